// metrics.cpp — the milter's instruments and their fixed label values; see metrics.hpp.
#include "milter/metrics.hpp"

#include "common/dns/dns.hpp"
#include "common/dns/dns_cache.hpp"
#include "common/redis/redis.hpp"

namespace postwarden::milter {

namespace {

// verdicts_total: each mechanism's results in the order of its enum, so that a result's series
// is its mechanism's offset plus the enum value.
constexpr std::size_t spf_results = 7, dkim_results = 7, dmarc_results = 5;
constexpr std::size_t spf_offset = 0, dkim_offset = spf_results,
                      dmarc_offset = spf_results + dkim_results;
static_assert(static_cast<std::size_t>(spf::Result::permerror) + 1 == spf_results);
static_assert(static_cast<std::size_t>(dkim::Result::permerror) + 1 == dkim_results);
static_assert(static_cast<std::size_t>(dmarc::Result::permerror) + 1 == dmarc_results);

std::vector<std::vector<std::string>> verdict_pairs() {
    std::vector<std::vector<std::string>> out;
    for (std::size_t i = 0; i < spf_results; ++i)
        out.push_back({"spf", std::string(spf::to_string(static_cast<spf::Result>(i)))});
    for (std::size_t i = 0; i < dkim_results; ++i)
        out.push_back({"dkim", std::string(dkim::to_string(static_cast<dkim::Result>(i)))});
    for (std::size_t i = 0; i < dmarc_results; ++i)
        out.push_back({"dmarc", std::string(dmarc::to_string(static_cast<dmarc::Result>(i)))});
    return out;
}

// Every (action, reason) pair session.cpp and inbound_decision.cpp log (README "Log lines"), then
// ("other", "other") so that a pair added later is counted before it is listed here.
std::vector<std::vector<std::string>> action_pairs() {
    return {{"accept", "verified"},
            {"accept", "trusted"},
            {"accept", "dmarc"},
            {"accept", "outbound"},
            {"hold", "dmarc"},
            {"reject", "dmarc"},
            {"reject", "forged-auth-results"},
            {"reject", "sender-login-mismatch"},
            {"reject", "from-login-mismatch"},
            {"tempfail", "dmarc-temperror"},
            {"tempfail", "greylist"},
            {"tempfail", "sender-login-mismatch"},
            {"tempfail", "from-login-mismatch"},
            {"other", "other"}};
}

}  // namespace

Metrics::Metrics()
    : sessions(registry, "postwarden_milter_sessions",
               "MTA connections (milter sessions) open now."),
      sessions_total(registry, "postwarden_milter_sessions_total", "MTA connections accepted."),
      messages(registry, "postwarden_milter_messages_total",
               "Messages that reached the end of the message, by direction.", "direction",
               {"inbound", "outbound"}),
      verdicts(registry, "postwarden_milter_verdicts_total",
               "Verification results of inbound messages: SPF for MAIL FROM, each DKIM signature, "
               "each DMARC evaluation.",
               {"mechanism", "result"}, verdict_pairs()),
      actions(registry, "postwarden_milter_actions_total",
              "Decisions, by action and reason (the action= and reason= of the log line).",
              {"action", "reason"}, action_pairs()),
      errors(registry, "postwarden_milter_errors_total",
             "Callbacks that failed unexpectedly and answered tempfail."),
      redis_latency(registry, "postwarden_milter_redis_command_duration_seconds",
                    "Redis round trips: from sending a command to its reply.",
                    metrics::latency_buckets()),
      redis_failures(registry, "postwarden_milter_redis_failures_total",
                     "Redis commands that got no reply, by why.", "error", redis::failure_labels()),
      dns_latency(registry, "postwarden_milter_dns_lookup_duration_seconds",
                  "DNS lookups for SPF, DKIM keys and DMARC records, retries included.",
                  metrics::latency_buckets()),
      dns_lookups(registry, "postwarden_milter_dns_lookups_total", "DNS lookups by outcome.",
                  "status", dns::status_labels()),
      dns_cache(registry, "postwarden_milter_dns_cache_lookups_total",
                "DNS questions answered from the answer cache (hit) or not (miss).", "result",
                dns::cache_result_labels()) {}

Metrics& metrics() {
    static Metrics instance;
    return instance;
}

void count_action(std::string_view action, std::string_view reason) {
    auto& m = metrics().actions;
    auto i = m.find({action, reason});
    m.inc(i != metrics::CounterFamily::npos ? i : m.size() - 1);
}

void count_verdicts(const std::optional<spf::Outcome>& spf,
                    const std::vector<dkim::Signature>& signatures,
                    const std::vector<dmarc::Evaluation>& evaluations) {
    auto& v = metrics().verdicts;
    v.inc(spf_offset + static_cast<std::size_t>(spf ? spf->result : spf::Result::none));
    for (const auto& s : signatures)
        v.inc(dkim_offset + static_cast<std::size_t>(s.result));
    if (signatures.empty()) v.inc(dkim_offset + static_cast<std::size_t>(dkim::Result::none));
    for (const auto& e : evaluations)
        v.inc(dmarc_offset + static_cast<std::size_t>(e.result));
    if (evaluations.empty()) v.inc(dmarc_offset + static_cast<std::size_t>(dmarc::Result::none));
}

}  // namespace postwarden::milter
