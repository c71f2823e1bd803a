// metrics.hpp — postwarden-milter's instruments for its Prometheus endpoint ([metrics]
// milter_listen, SPEC §6); README "Metrics" lists every one with its labels.
//
// Entry points: metrics() (the process's one set), count_action(), count_verdicts().
// Threading: the instruments are atomics (common/metrics.hpp), safe from libmilter's connection
// threads and the endpoint's thread at once. Label values are a fixed set declared here, so
// counting never allocates.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "common/dns/spf.hpp"
#include "common/mail/dkim.hpp"
#include "common/mail/dmarc.hpp"
#include "common/metrics.hpp"

namespace postwarden::milter {

struct Metrics {
    metrics::Registry registry;
    metrics::Gauge sessions;
    metrics::Counter sessions_total;
    metrics::CounterFamily messages;  // direction
    metrics::CounterFamily verdicts;  // mechanism, result
    metrics::CounterFamily actions;   // action, reason
    metrics::Counter errors;
    metrics::Histogram redis_latency;
    metrics::CounterFamily redis_failures;  // redis::Failure
    metrics::Histogram dns_latency;
    metrics::CounterFamily dns_lookups;  // dns::Status
    metrics::CounterFamily dns_cache;    // dns::AnswerCache::Result

    Metrics();
};

Metrics& metrics();

// One logged decision, with the action= and reason= of its log line.
void count_action(std::string_view action, std::string_view reason);
// The verdicts of one inbound message: SPF for MAIL FROM, each DKIM signature, each DMARC
// evaluation ("none" for a mechanism with nothing to report).
void count_verdicts(const std::optional<spf::Outcome>& spf,
                    const std::vector<dkim::Signature>& signatures,
                    const std::vector<dmarc::Evaluation>& evaluations);

}  // namespace postwarden::milter
