// signer.hpp — which keys sign an outbound message (SPEC §9, S14): the header From domain's
// active selectors (Redis SET <prefix>dkim:selectors:<domain>), or when it has none its
// organizational domain's, each with a usable key file under [dkim] key_dir.
//
// Entry points: plan_signing() (at end of headers, after S8 passed), usable_selectors() (pure).
//
// Threading: any thread; plan_signing reads both SETs from the selector cache (Services), which
// answers from memory or within about 2 × [redis] timeout_ms, and makes a stat(2) per selector.
#pragma once

#include <string>
#include <vector>

#include "common/mail/dkim_sign.hpp"
#include "milter/services.hpp"
#include "milter/verdict.hpp"

namespace postwarden::milter {

struct SigningPlan {
    // sign: keys found; skip: the message goes unsigned (note says why); unavailable: Redis did
    // not answer, the message is deferred rather than sent unsigned.
    enum class Outcome { sign, skip, unavailable } outcome = Outcome::skip;
    std::string domain;  // d=
    std::vector<dkim::SigningKey> keys;
    std::string note;                  // for the log line: "dkim=…"
    std::vector<std::string> skipped;  // "selector: why" for each active selector left out
};

// The members of a selector SET that are valid selectors (dkim::valid_selector), sorted, without
// repeats, at most dkim::max_signing_keys.
std::vector<std::string> usable_selectors(std::vector<std::string> members);

// The plan for a message whose From fields read as `from`.
SigningPlan plan_signing(const Services& services, const Config& config, const FromFields& from);

}  // namespace postwarden::milter
