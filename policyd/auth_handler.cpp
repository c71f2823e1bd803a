// auth_handler.cpp — an auth-policy request from HTTP parts to answer; see auth_handler.hpp.
#include "policyd/auth_handler.hpp"

#include "common/auth_keys.hpp"
#include "common/clock.hpp"
#include "common/log.hpp"
#include "common/quota_keys.hpp"
#include "policyd/auth_decision.hpp"
#include "policyd/metrics.hpp"

namespace postwarden::policy {

namespace {

// The client as counted: "" when Dovecot gave none, or it is exempt (never counted, never locked).
std::string counted_client(const AuthRequest& r, const Config& config) {
    if (!r.remote || any_contains(config.auth.exempt_networks, *r.remote)) return "";
    return auth_client_id(*r.remote);
}

void append_who(std::string& line, const AuthRequest& r) {
    line += " client=";
    line += r.remote ? r.remote->to_string() : std::string("unknown");
    line += " login=";
    log::append_printable(line, r.login.empty() ? std::string_view("<>") : r.login);
}

void log_verdict(const AuthRequest& r, const AuthVerdict& v, long long until_ms) {
    if (v.status == 0) return;
    std::string line = v.status < 0 ? "auth: action=refuse reason=" : "auth: action=tarpit reason=";
    line += v.reason;
    append_who(line, r);
    if (v.status > 0) line += " delay=" + std::to_string(v.status);
    if (until_ms > 0) line += " until=" + rfc3339(until_ms);
    log::info(line);
}

void log_lockout(const AuthRequest& r, const FailureOutcome& o, const Config& config) {
    std::string line = "auth: action=lockout";
    append_who(line, r);
    line += " failures=" + window_text(config.auth.ip_lockout);
    line += " until=" + rfc3339(*o.locked_until);
    log::notice(line);
}

HttpAnswer answer(const AuthVerdict& v) {
    return {200, response_body(v), true};
}

}  // namespace

void AuthHandler::handle(const HttpParts& http, std::shared_ptr<const Config> config,
                         std::function<void(HttpAnswer)> done) {
    auto parsed = parse_auth_request(http, config->auth.api_key);
    if (auto* refusal = std::get_if<AuthRefusal>(&parsed)) {
        count_auth_bad_request(refusal->reason);
        return done({refusal->http_status, std::move(refusal->text), false});
    }
    auto& request = std::get<AuthRequest>(parsed);
    if (request.command == AuthCommand::allow)
        allow(std::move(request), std::move(config), std::move(done));
    else
        report(std::move(request), std::move(config), std::move(done));
}

void AuthHandler::allow(AuthRequest request, std::shared_ptr<const Config> config,
                        std::function<void(HttpAnswer)> done) {
    // An exempt client is never locked; its login may still be (block:auth) or be slowed down.
    auto client = counted_client(request, *config);
    auto now = unix_now_ms();
    auto login = request.login;  // the callback below takes request: read it first
    store_.lookup(login, client, now, *config,
                  [request = std::move(request), config, now,
                   done = std::move(done)](std::optional<AuthState> state) {
                      auto verdict = state ? decide_allow(*state, now, config->auth)
                                           : unavailable_verdict(config->auth.fail_mode);
                      count_auth_request("allow", verdict.reason);
                      const long long until =
                          verdict.reason == "client-locked" ? *state->locked_until : 0;
                      log_verdict(request, verdict, until);
                      done(answer(verdict));
                  });
}

void AuthHandler::report(AuthRequest request, std::shared_ptr<const Config> config,
                         std::function<void(HttpAnswer)> done) {
    const AuthVerdict ok{0, "", ""};
    if (!counts_as_failure(request.success, request.policy_reject)) {
        count_auth_request("report", request.success ? "success" : "policy-reject");
        return done(answer(ok));
    }
    auto client = counted_client(request, *config);
    auto login = request.login;  // the callback below takes request: read it first
    store_.record_failure(login, client, unix_now_ms(), *config,
                          [request = std::move(request), config, ok,
                           done = std::move(done)](std::optional<FailureOutcome> outcome) {
                              if (!outcome) {
                                  count_auth_request("report", "unavailable");
                                  log::warning("auth: a failed login of " +
                                               log::printable(request.login) +
                                               " was not counted: Redis did not answer");
                              } else {
                                  count_auth_request("report", "failure");
                                  if (outcome->locked_now) {
                                      metrics().auth_lockouts.inc();
                                      log_lockout(request, *outcome, *config);
                                  }
                              }
                              done(answer(ok));
                          });
}

}  // namespace postwarden::policy
