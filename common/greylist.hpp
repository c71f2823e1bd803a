// greylist.hpp — the greylisting rules both daemons share (SPEC §4, S1/S2): which keys a triplet
// uses, the arguments of common/redis/lua/greylist.lua, and what its reply means. policyd applies
// them at RCPT, the milter at end of message for SPF-passing mail without aligned DKIM, so the same
// triplet is the same Redis key whichever program sees it first. Pure: no Redis, no clock.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.hpp"
#include "common/inet.hpp"

namespace postwarden {

// Who the client is for greylisting: its network (subnet_v4/v6), or the SPF-authenticated
// domain when SPF passed, so a sender's pool retrying from another address is the same client.
struct GreylistKeys {
    std::string identity;
    std::string triplet;  // KEYS[1] of greylist.lua
    std::string client;   // KEYS[2]: the sender domains that count towards auto-allow
    bool network = true;  // the identity is the client network, not an SPF domain
};

// sender and recipient as the envelope has them; spf_domain empty unless SPF passed (the
// sender's domain, or the HELO name for the null sender). All three are spelled here as
// canonical_address() / canonical_domain() (address.hpp) do: lower-cased, internationalized
// domains in A-labels, so every spelling of one sender is one triplet and one client.
GreylistKeys greylist_keys(const std::optional<IpAddress>& client, std::string_view sender,
                           std::string_view recipient, std::string_view spf_domain,
                           const Config& config);

// auto_allow_clients as it applies to these keys: only a client network earns auto-allow. An
// SPF domain is no evidence about the addresses it covers (a record may say +all, and the null
// sender's identity is any HELO name its owner publishes), so for it this is 0.
long greylist_auto_allow(const GreylistKeys& keys, const Config& config);

// ARGV of greylist.lua for a decision at now_ms (unix milliseconds).
std::vector<std::string> greylist_args(const GreylistKeys& keys, long long now_ms,
                                       const Config& config);
// ARGV of greylist.lua that count sender_domain towards the client's auto-allow: the milter
// accepted a message on this triplet. The reply is {"counted" | "uncounted", members}.
std::vector<std::string> greylist_count_args(const GreylistKeys& keys,
                                             std::string_view sender_domain, long long now_ms,
                                             const Config& config);

// First sight without the script. A new triplet is what a greylisting server sees most after
// known ones, and greylist.lua costs Redis about 10x a plain command. For a new triplet the
// script only writes "f<now>" with the retry_window TTL, so one command does the same, and says
// whether the triplet was new:  SET <triplet> f<now> NX GET EX <retry_window>  (Redis >= 7.0).
// nil: nothing was there and the record is written, the answer is {defer_new, delay}; anything
// else: nothing was written, the script decides as always. Only for delay > 0 (with no delay a
// new triplet passes at once, which the script does). When auto-allow applies
// (greylist_auto_allow) the caller also reads the client's count (SCARD <client>, in the same
// write): for a client at the threshold it deletes the record it wrote and runs the script,
// which would not have written one.
bool greylist_first_sight_applies(const Config& config);
std::vector<std::string> greylist_first_sight_command(const GreylistKeys& keys, long long now_ms,
                                                      const Config& config);

enum class GreylistVerdict { defer_new, defer_early, passed, known, client_allowed };

struct GreylistOutcome {
    GreylistVerdict verdict;
    long seconds;  // defer: time left; passed: time waited; client_allowed: passed triplets
};

// Interprets greylist.lua's reply {verdict, seconds}; nullopt when it is malformed.
std::optional<GreylistOutcome> parse_greylist_reply(std::string_view verdict, long long seconds);

}  // namespace postwarden
