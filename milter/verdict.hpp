// verdict.hpp — the pure part of the end-of-message decision for inbound mail: what the From
// fields say (RFC 7489 §6.6.1), the Authentication-Results entries, and what DMARC enforcement
// (SPEC §5: dmarc_reject, dmarc_quarantine) makes of the evaluations.
//
// Entry points: read_from(), dmarc_action(), auth_results_for(), dkim_aligned_with().
// Pure: values in, values out.
#pragma once

#include <string>
#include <vector>

#include "common/auth_results.hpp"
#include "common/config.hpp"
#include "common/dns/spf.hpp"
#include "common/mail/dkim.hpp"
#include "common/mail/dmarc.hpp"
#include "common/mail/mail_header.hpp"

namespace postwarden::milter {

// The header From as DMARC needs it.
struct FromFields {
    enum class Kind {
        absent,     // no From field: no identifier to protect, DMARC does not apply
        usable,     // one From field with at least one readable mailbox
        malformed,  // several From fields, an unreadable one, or one without mailboxes
    } kind = Kind::absent;
    std::vector<MailAddress> addresses;
    std::vector<std::string> domains;  // distinct, in order of appearance
    std::string problem;               // for malformed
};

// DMARC is evaluated for every From domain, two TXT lookups each: a From with more distinct
// domains than this is malformed (refused like a DMARC failure), so a message costs at most
// 2 * max_from_domains DMARC lookups. Evaluating only the first ones instead would let a
// hostile From hide a p=reject domain behind harmless ones.
constexpr std::size_t max_from_domains = 8;

FromFields read_from(const std::vector<std::string>& fields, int count, bool too_long);

// What enforcement makes of one message's DMARC outcome.
struct DmarcAction {
    // unknown_policy: the DMARC record could not be fetched and nothing aligned (451 4.7.5).
    enum class Kind { none, reject, tempfail, unknown_policy, hold, header } kind = Kind::none;
    std::string domain;  // the From domain that caused it
    std::string reason;  // for the log
};

// The strongest action any evaluation asks for. A malformed From is handled as a DMARC failure
// under p=reject (it is how multi-From and broken-From tricks bypassed OpenDMARC), so it follows
// dmarc_reject too. A failure that a temporary DNS error may have caused gets tempfail, never a
// permanent reject; a From domain whose record could not be fetched gets unknown_policy unless
// SPF or DKIM aligns with it (SPEC §10) or no enforcement is configured.
DmarcAction dmarc_action(const FromFields& from, const std::vector<dmarc::Evaluation>& evaluations,
                         const Config& config);

// Whether a passing DKIM signature's d= aligns (relaxed) with one of the domains (S2).
bool dkim_aligned_with(const std::vector<dkim::Signature>& signatures,
                       const std::vector<std::string>& domains, const dmarc::PublicSuffixList& psl);

AuthResults auth_results_for(const std::string& authserv_id,
                             const std::optional<spf::Outcome>& spf_mailfrom,
                             const std::optional<spf::Outcome>& spf_helo,
                             const std::vector<dkim::Signature>& signatures, const FromFields& from,
                             const std::vector<dmarc::Evaluation>& evaluations);

}  // namespace postwarden::milter
