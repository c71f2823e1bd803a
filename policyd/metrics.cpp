// metrics.cpp — policyd's instruments and their fixed label values; see metrics.hpp.
#include "policyd/metrics.hpp"

#include "common/dns/dns.hpp"
#include "common/dns/dns_cache.hpp"
#include "common/redis/redis.hpp"

namespace postwarden::policy {

namespace {

// protocol_state values Postfix sends (SMTPD_POLICY_README), then "other".
std::vector<std::string> protocol_states() {
    return {"CONNECT", "EHLO",           "HELO", "MAIL", "RCPT",
            "DATA",    "END-OF-MESSAGE", "VRFY", "ETRN", "other"};
}

// Every (action, reason) pair decision.cpp, quota.cpp and handler.cpp can log (README "Logs"),
// then ("other", "other") so that a pair added later is counted before it is listed here.
std::vector<std::vector<std::string>> decision_pairs() {
    return {{"DUNNO", "allow"},
            {"DUNNO", "outbound"},
            {"DUNNO", "greylist-passed"},
            {"DUNNO", "greylist-known"},
            {"DUNNO", "greylist-client"},
            {"DUNNO", "greylist-off"},
            {"DUNNO", "spf-handoff"},
            {"DUNNO", "quota-ok"},
            {"DUNNO", "quota-commit"},
            {"DUNNO", "lists-unavailable"},
            {"DUNNO", "greylist-unavailable"},
            {"DUNNO", "quota-unavailable"},
            {"DEFER_IF_PERMIT", "greylist"},
            {"DEFER_IF_PERMIT", "lists-unavailable"},
            {"DEFER_IF_PERMIT", "greylist-unavailable"},
            {"DEFER_IF_PERMIT", "quota-unavailable"},
            {"PREPEND", "greylist-passed"},
            {"DEFER", "quota-throttled"},
            {"REJECT", "block-login"},
            {"REJECT", "block-sender"},
            {"REJECT", "block-net"},
            {"REJECT", "block-tld"},
            {"REJECT", "quota-blocked"},
            {"other", "other"}};
}

// Every (command, result) the auth handler counts, then ("other", "other").
std::vector<std::vector<std::string>> auth_results() {
    return {{"allow", "allow"},         {"allow", "tarpit"},         {"allow", "account-locked"},
            {"allow", "client-locked"}, {"allow", "unavailable"},    {"report", "failure"},
            {"report", "success"},      {"report", "policy-reject"}, {"report", "unavailable"},
            {"other", "other"}};
}

std::vector<std::string> auth_bad_reasons() {
    return {"method", "path", "api-key", "command", "too-large",
            "utf8",   "json", "fields",  "http",    "other"};
}

}  // namespace

Metrics::Metrics()
    : requests(registry, "postwarden_policyd_requests_total",
               "Policy requests received, by protocol_state.", "protocol_state", protocol_states()),
      decisions(registry, "postwarden_policyd_decisions_total",
                "Decisions answered at RCPT and END-OF-MESSAGE, by action and reason (the "
                "action= and reason= of the log line).",
                {"action", "reason"}, decision_pairs()),
      connections(registry, "postwarden_policyd_connections",
                  "Policy client connections open now."),
      connections_accepted(registry, "postwarden_policyd_connections_accepted_total",
                           "Policy client connections accepted."),
      connections_refused(registry, "postwarden_policyd_connections_refused_total",
                          "Connections closed at once because max_connections were open."),
      protocol_errors(registry, "postwarden_policyd_protocol_errors_total",
                      "Client connections closed for breaking the policy protocol."),
      redis_latency(registry, "postwarden_policyd_redis_command_duration_seconds",
                    "Redis round trips: from sending a command to its reply.",
                    metrics::latency_buckets()),
      redis_failures(registry, "postwarden_policyd_redis_failures_total",
                     "Redis commands that got no reply, by why; each is answered per fail_mode.",
                     "error", redis::failure_labels()),
      dns_latency(registry, "postwarden_policyd_dns_lookup_duration_seconds",
                  "DNS lookups of SPF checks, retries included.", metrics::latency_buckets()),
      dns_lookups(registry, "postwarden_policyd_dns_lookups_total", "DNS lookups by outcome.",
                  "status", dns::status_labels()),
      dns_cache(registry, "postwarden_policyd_dns_cache_lookups_total",
                "DNS questions answered from the answer cache (hit) or not (miss).", "result",
                dns::cache_result_labels()),
      spf_duration(registry, "postwarden_policyd_spf_check_duration_seconds",
                   "SPF evaluations on the SPF threads, all their DNS lookups included.",
                   metrics::latency_buckets()),
      connections_unauthorized(registry, "postwarden_policyd_connections_unauthorized_total",
                               "Unix-socket connections closed at once: the peer's uid and gid "
                               "are not the socket's owner, group or root."),
      internal_errors(registry, "postwarden_policyd_internal_errors_total",
                      "Errors inside policyd caught at a session or the event loop; each "
                      "request it hit was answered DEFER_IF_PERMIT."),
      auth_requests(registry, "postwarden_policyd_auth_requests_total",
                    "Dovecot auth-policy requests answered, by command and result.",
                    {"command", "result"}, auth_results()),
      auth_bad_requests(registry, "postwarden_policyd_auth_bad_requests_total",
                        "Auth-policy requests refused before any state was read, by reason.",
                        "reason", auth_bad_reasons()),
      auth_lockouts(registry, "postwarden_policyd_auth_lockouts_total",
                    "Client addresses locked out for too many failed logins."),
      auth_tarpits(registry, "postwarden_policyd_auth_tarpits_total",
                   "Logins delayed for earlier failures of the same login.") {}

Metrics& metrics() {
    static Metrics instance;
    return instance;
}

void count_request(std::string_view protocol_state) {
    auto& m = metrics().requests;
    auto i = m.find({protocol_state});
    m.inc(i != metrics::CounterFamily::npos ? i : m.size() - 1);
}

void count_decision(std::string_view action, std::string_view reason) {
    auto& m = metrics().decisions;
    auto i = m.find({action.substr(0, action.find(' ')), reason});
    m.inc(i != metrics::CounterFamily::npos ? i : m.size() - 1);
}

void count_auth_request(std::string_view command, std::string_view result) {
    auto& m = metrics().auth_requests;
    auto i = m.find({command, result});
    m.inc(i != metrics::CounterFamily::npos ? i : m.size() - 1);
    if (result == "tarpit") metrics().auth_tarpits.inc();
}

void count_auth_bad_request(std::string_view reason) {
    auto& m = metrics().auth_bad_requests;
    auto i = m.find({reason});
    m.inc(i != metrics::CounterFamily::npos ? i : m.size() - 1);
}

}  // namespace postwarden::policy
