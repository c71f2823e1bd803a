// auth_decision.cpp — the login-protection decision; see auth_decision.hpp.
#include "policyd/auth_decision.hpp"

#include <nlohmann/json.hpp>

#include "common/quota_keys.hpp"

namespace postwarden::policy {

std::string lockout_message(long long until_ms) {
    return "Too many failed logins, try again after " + rfc3339(until_ms);
}

AuthVerdict decide_allow(const AuthState& state, long long now_ms, const Config::Auth& config) {
    if (state.account_locked) return {-1, std::string(account_locked_message), "account-locked"};
    if (state.locked_until && *state.locked_until > now_ms)
        return {-1, lockout_message(*state.locked_until), "client-locked"};
    if (int delay = tarpit_seconds(state.login_failures, config.tarpit_after); delay > 0)
        return {delay, "", "tarpit"};
    return {0, "", "allow"};
}

AuthVerdict unavailable_verdict(FailMode mode) {
    if (mode == FailMode::closed)
        return {-1, "Temporary authentication failure, try again later", "unavailable"};
    return {0, "", "unavailable"};
}

std::string response_body(const AuthVerdict& verdict) {
    nlohmann::json body = {{"status", verdict.status}, {"msg", verdict.msg}};
    return body.dump();
}

}  // namespace postwarden::policy
