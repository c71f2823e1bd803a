// checks.hpp — the milter's Redis-backed checks: S8 (an authenticated user sends only as the
// login or an address in alias:<login>) and the end of S2 (trusted greylisting with the shared
// greylist.lua, same triplets as policyd).
//
// Entry points: sender_allowed(), alias_candidates(), greylist_message().
// Threading: any thread; they block on SyncRedis (bounded by [redis] timeout_ms).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

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
};

// Applies greylist.lua to the triplet of every recipient; deferred when any is deferred.
GreylistResult greylist_message(const Services& services, const Config& config,
                                const std::optional<IpAddress>& client, std::string_view sender,
                                const std::vector<std::string>& recipients,
                                std::string_view spf_domain, long long now_ms);

}  // namespace postwarden::milter
