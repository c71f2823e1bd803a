// auth_decision.hpp — what postwarden-policyd answers Dovecot's authentication-policy requests
// (SPEC §8, S11, S12), as pure functions of the request and of the state Redis holds: no I/O, no
// clock (now is an argument).
//
//   allow (before and after authentication; Dovecot sends both the same way and only delays
//   before it, so the answer is the same):
//     login in block:auth              −1 "Account locked, contact support"
//     client locked                    −1 "Too many failed logins, try again after <RFC 3339>"
//     login failed n ≥ tarpit_after    2^(n − tarpit_after) s, at most 15 (a tarpit, not a refusal;
//                                      tarpit_seconds, common/auth_keys.hpp)
//     otherwise                        0
//   block:login (S4) is not consulted: a sender blocked from sending may still log in (S12).
//   report: a failure that was not our own refusal counts one for the client (unless exempt)
//     and one for the login; a success resets nothing. The answer is always 0.
//
// Entry points: AuthState, AuthVerdict, decide_allow, counts_as_failure,
// unavailable_verdict, lockout_message, response_body.
// Threading: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/auth_keys.hpp"
#include "common/config.hpp"

namespace postwarden::policy {

// What Redis says about one allow request.
struct AuthState {
    bool account_locked = false;            // the login is in block:auth
    std::optional<long long> locked_until;  // unix ms the client's lockout ends, when locked
    long login_failures = 0;                // failures of the login within ip_lockout's window
};

struct AuthVerdict {
    int status = 0;      // −1 refuse, 0 allow, N > 0 delay N seconds
    std::string msg;     // Dovecot's "msg": shown to the user with −1
    std::string reason;  // the log line's and the metrics' reason: a fixed word
};

inline constexpr std::string_view account_locked_message = "Account locked, contact support";
// "Too many failed logins, try again after 2024-05-01T12:00:01Z".
std::string lockout_message(long long until_ms);

AuthVerdict decide_allow(const AuthState& state, long long now_ms, const Config::Auth& config);

// Whether a report counts a failure: not a success, and not a refusal of ours (Dovecot says
// policy_reject), which must not feed the count it came from.
inline bool counts_as_failure(bool success, bool policy_reject) {
    return !success && !policy_reject;
}

// The answer when Redis could not say, per [auth] fail_mode.
AuthVerdict unavailable_verdict(FailMode mode);

// {"status":N,"msg":"..."} as Dovecot reads it.
std::string response_body(const AuthVerdict& verdict);

}  // namespace postwarden::policy
