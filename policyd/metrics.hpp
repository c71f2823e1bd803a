// metrics.hpp — postwarden-policyd's instruments for its Prometheus endpoint ([metrics]
// policyd_listen, SPEC §6); README "Metrics" lists every one with its labels.
//
// Entry points: metrics() (the process's one set), count_request(), count_decision().
// Threading: the instruments are atomics (common/metrics.hpp), safe from the io thread, the SPF
// pool and the endpoint's thread alike. Label values are a fixed set declared here, so counting
// never allocates; text that arrives as a string (protocol_state, a decision's reason) is
// matched against it and counted as "other" when it is not in it.
#pragma once

#include <string_view>

#include "common/metrics.hpp"

namespace postwarden::policy {

struct Metrics {
    metrics::Registry registry;
    metrics::CounterFamily requests;   // protocol_state
    metrics::CounterFamily decisions;  // action, reason
    metrics::Gauge connections;
    metrics::Counter connections_accepted;
    metrics::Counter connections_refused;
    metrics::Counter protocol_errors;
    metrics::Histogram redis_latency;
    metrics::CounterFamily redis_failures;  // redis::Failure
    metrics::Histogram dns_latency;
    metrics::CounterFamily dns_lookups;  // dns::Status
    metrics::CounterFamily dns_cache;    // dns::AnswerCache::Result
    metrics::Histogram spf_duration;
    metrics::Counter connections_unauthorized;
    metrics::Counter internal_errors;
    metrics::CounterFamily auth_requests;      // command, result (auth_handler.cpp)
    metrics::CounterFamily auth_bad_requests;  // reason (AuthRefusal::reason)
    metrics::Counter auth_lockouts;
    metrics::Counter auth_tarpits;

    Metrics();
};

Metrics& metrics();

// One request, by its protocol_state as the Facts hold it (upper-case).
void count_request(std::string_view protocol_state);
// One logged decision: the action's first word ("DEFER_IF_PERMIT 4.7.1 ..." counts as
// DEFER_IF_PERMIT) and its reason.
void count_decision(std::string_view action, std::string_view reason);
// One Dovecot auth-policy request answered, and one refused as malformed.
void count_auth_request(std::string_view command, std::string_view result);
void count_auth_bad_request(std::string_view reason);

}  // namespace postwarden::policy
