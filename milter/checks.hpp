// checks.hpp — the milter's Redis-backed checks: S8 (an authenticated user sends only as the
// login or an address in alias:<login>) and the end of S2 (trusted greylisting with the shared
// greylist.lua, same triplets as policyd).
//
// Entry points: sender_allowed(), alias_candidates(), greylist_message(), count_accepted().
// Threading: any thread; they block on SyncRedis (bounded by [redis] timeout_ms).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/greylist.hpp"
#include "common/inet.hpp"
#include "milter/services.hpp"

namespace postwarden::milter {

enum class CheckResult { yes, no, unavailable };

// The SET members that would allow `address` for a login: the address and "@domain".
std::vector<std::string> alias_candidates(std::string_view address);

// Both take the caller's configuration snapshot (the Session's), not the one in force now.

// Whether every address is the login itself or listed in alias:<login> (addresses lower-cased).
CheckResult sender_allowed(const Services& services, const Config& config, std::string_view login,
                           const std::vector<std::string>& addresses);

struct GreylistResult {
    CheckResult deferred = CheckResult::no;  // yes: answer 451; unavailable: Redis failed
    std::string detail;                      // for the log: verdicts per recipient
    // A network triplet of this message that passed greylisting, when accepting the message
    // would add its sender domain to the client's auto-allow count (count_accepted).
    std::optional<GreylistKeys> countable;
};

// Greylisting at end of message for inbound mail that is not trusted (S2): accepted only when
// every recipient's triplet passed, or the client is auto-allowed, or an allow list names it.
// policyd greylisted the client network at RCPT when its own SPF check did not pass, and handed
// the decision over when it did; its lookup may have answered otherwise than the milter's, so
// the network triplets are read first (one MGET: what passed at RCPT is not deferred again), and
// the rest goes through greylist.lua with the milter's own identity: spf_domain when SPF passed
// for it (empty otherwise), else the network.
GreylistResult greylist_message(const Services& services, const Config& config,
                                const std::optional<IpAddress>& client, std::string_view sender,
                                const std::vector<std::string>& recipients,
                                std::string_view spf_domain, long long now_ms);

// For mail policyd greylisted at RCPT (trust_authenticated off: the milter does not greylist):
// the network triplet of a recipient that passed, when accepting the message would add its
// sender domain to the client's auto-allow count. One round trip, only with auto-allow on.
std::optional<GreylistKeys> countable_passed(const Services& services, const Config& config,
                                             const std::optional<IpAddress>& client,
                                             std::string_view sender,
                                             const std::vector<std::string>& recipients);

// The message was accepted: counts its sender's domain towards the client network's auto-allow
// (greylist.lua). Its outcome is only logged: the message is accepted whatever it is.
void count_accepted(const Services& services, const Config& config, const GreylistKeys& keys,
                    std::string_view sender, long long now_ms);

}  // namespace postwarden::milter
