// inbound_decision.hpp — the end of an inbound message (SPEC §5) as values: the Facts the
// lookups found, decide() that makes a Decision of them, and log_line() that records it. The
// lookups themselves (DKIM keys and DMARC records in DNS, greylisting in Redis) are the shell's,
// in inbound.cpp: gather → decide → log.
//
// Greylisting needs Redis in the middle, and only when the decision so far is "accept, not
// trusted": decide() then answers a Decision whose `lookup` says what to look up; the shell adds
// the answer to the Facts and calls decide() again, which answers for good.
//
// Order, and why: a permanent DMARC verdict comes before greylisting (no point in making a
// sender retry a message we will refuse); the forged Authentication-Results fields are removed
// and ours is added only when the message is accepted.
//
// Entry points: decide(), log_line(), spf_passed(). Pure: no DNS, no Redis, no clock, no random
// draw (DMARC's pct draw is already in the evaluations).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/dns/spf.hpp"
#include "common/inet.hpp"
#include "common/mail/dkim.hpp"
#include "common/mail/dmarc.hpp"
#include "milter/effects.hpp"
#include "milter/verdict.hpp"

namespace postwarden::milter {

// What greylisting at end of message answered (checks.hpp greylist_message).
struct GreylistFacts {
    enum class Deferred { no, yes, unavailable } deferred = Deferred::no;  // unavailable: Redis
    std::string detail;      // verdicts per recipient, for the log
    bool countable = false;  // accepting the message would count towards the client's auto-allow
};

// What the lookups found about one inbound message.
struct Facts {
    std::string queue_id;  // empty: not assigned yet
    std::optional<IpAddress> client;
    std::string sender;  // envelope, without <>
    std::optional<spf::Outcome> spf_mailfrom, spf_helo;
    std::vector<dkim::Signature> signatures;
    FromFields from;
    std::vector<dmarc::Evaluation> evaluations;  // one per From domain
    // A passing DKIM signature aligns (relaxed) with a From domain or, when SPF passed, with the
    // envelope sender's domain (S2: with SPF passing, the message is trusted).
    bool dkim_aligned = false;
    std::vector<int> forged_auth_results;  // 1-based among Authentication-Results fields
    // The answers to Decision::lookup; absent until looked up.
    std::optional<GreylistFacts> greylist;     // Lookup::greylist
    std::optional<bool> auto_allow_countable;  // Lookup::auto_allow (checks.hpp countable_passed)
};

struct Decision {
    // Not none: not final yet; look this up, add it to the Facts and decide again.
    enum class Lookup { none, greylist, auto_allow } lookup = Lookup::none;
    std::string action;               // accept, hold, reject, tempfail (log and metrics)
    std::string reason;               // verified, trusted, dmarc, dmarc-temperror, greylist
    std::optional<std::string> note;  // what DMARC found, after the reason in the log
    Effects effects;                  // the reply, the fields to remove and insert, the hold
    bool count_auto_allow = false;    // accepted as it is: count_accepted() for the client
};

// SPF passed at MAIL FROM for a domain (the identity S2 trusts and greylists by).
bool spf_passed(const Facts& facts);

Decision decide(const Facts& facts, const Config& config);

// "QUEUEID: action=A reason=R[ NOTE] client=IP sender=<S> spf=.. dkim=.. dmarc=..[ greylist=..]
// [ removed_auth_results=N]", the one line a message's decision logs.
std::string log_line(const Facts& facts, const Decision& decision);

}  // namespace postwarden::milter
