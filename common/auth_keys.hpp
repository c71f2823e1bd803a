// auth_keys.hpp — the login-protection key scheme (SPEC §8) shared by policyd, which writes the
// keys through common/redis/lua/auth_fail.lua, and the admin CLI, which reads and deletes them
// (`postwarden auth status|unlock`, `postwarden blocked`). No Redis I/O, no clock.
//
// Keys, all under [redis] prefix, each with a TTL (the script's header says which):
//   auth:{addr:<client>}:fails   ZSET of failed logins from one client, scored by time (ms)
//   auth:{addr:<client>}:lock    STRING: the unix ms the lockout ends
//   auth:{login:<login>}:fails   ZSET of failed logins of one login, scored by time (ms)
//   auth:locked                  ZSET of the clients locked now → when their lockout ends
// <client> is the address (v4) or its /64 ("2001:db8:1:2::/64"): an IPv6 client owns a /64.
// The braces are the keys' hash tag: one client's keys, or one login's, share a Redis Cluster
// slot, so each script call touches one slot. block:auth (SET of logins locked until support
// unlocks them) is an operator list like block:login.
//
// Also the tarpit's arithmetic, which `postwarden auth status` shows as policyd applies it.
//
// Entry points: auth_client_id, parse_auth_client, AuthAddressKeys, auth_address_keys,
// auth_login_key, auth_locked_index_key, auth_block_key, tarpit_seconds.
// Threading: pure functions, callable from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/config.hpp"
#include "common/inet.hpp"

namespace postwarden {

// How failures of `address` are counted: the address itself (v4), or its /64 (v6).
std::string auth_client_id(const IpAddress& address);

// An operator's ADDRESS (an address, or a v6 /64 as auth_client_id spells it) as the client id
// it is counted under; nullopt when it is neither.
std::optional<std::string> parse_auth_client(std::string_view text);

struct AuthAddressKeys {
    std::string fails, lock;
};
AuthAddressKeys auth_address_keys(std::string_view client_id, const Config& config);

// The failure log of a login (lower-cased by the caller). Braces and '%' are percent-encoded,
// so the hash tag is the whole login and two logins never share a key.
std::string auth_login_key(std::string_view login, const Config& config);

// <prefix>auth:locked: ZSET client id → unix ms its lockout ends, the index `postwarden blocked`
// reads instead of walking the keyspace. Written by policyd after auth_fail.lua locked a client
// (outside the client's hash tag, as block:why is), pruned of ended lockouts on each write; TTL
// lockout_time, so it lives as long as its newest member.
std::string auth_locked_index_key(const Config& config);

// <prefix>block:auth.
std::string auth_block_key(const Config& config);

inline constexpr int tarpit_max_seconds = 15;
// 2^(failures − tarpit_after) seconds once a login's failures reach tarpit_after, at most 15; 0
// before, or when tarpit_after is 0 (off).
int tarpit_seconds(long failures, long tarpit_after);

}  // namespace postwarden
