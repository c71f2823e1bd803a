// metrics_test.cpp — the Prometheus text exposition format as common/metrics.hpp renders it
// (HELP/TYPE lines, label escaping, cumulative buckets with +Inf, _sum and _count), the checks
// on names, exact counting from many threads, and how policyd files requests and decisions.
#include <catch2/catch.hpp>

#include <thread>
#include <vector>

#include "common/metrics.hpp"
#include "policyd/metrics.hpp"

using namespace postwarden;

TEST_CASE("counters, gauges and labelled counters render as the text format says", "[metrics]") {
    metrics::Registry r;
    metrics::Counter requests(r, "pw_requests_total", "Requests.");
    metrics::Gauge open(r, "pw_open", "Open now.");
    metrics::CounterFamily by(r, "pw_by_total", "By action and reason.", {"action", "reason"},
                              {{"DUNNO", "allow"}, {"REJECT", "block-net"}});
    requests.inc();
    requests.inc(41);
    open.inc();
    open.inc();
    open.dec();
    by.inc(by.find({"REJECT", "block-net"}), 3);
    CHECK(r.render() ==
          "# HELP pw_requests_total Requests.\n"
          "# TYPE pw_requests_total counter\n"
          "pw_requests_total 42\n"
          "# HELP pw_open Open now.\n"
          "# TYPE pw_open gauge\n"
          "pw_open 1\n"
          "# HELP pw_by_total By action and reason.\n"
          "# TYPE pw_by_total counter\n"
          "pw_by_total{action=\"DUNNO\",reason=\"allow\"} 0\n"
          "pw_by_total{action=\"REJECT\",reason=\"block-net\"} 3\n");
    open.set(-2);
    CHECK(r.render().find("pw_open -2\n") != std::string::npos);
}

TEST_CASE("a histogram has cumulative buckets, +Inf, _sum and _count", "[metrics]") {
    metrics::Registry r;
    metrics::Histogram h(r, "pw_latency_seconds", "Latency.", {0.0005, 0.01, 1});
    h.observe(0.0001);
    h.observe(0.0005);  // a bucket's bound is inclusive (le)
    h.observe(std::chrono::milliseconds(5));
    h.observe(2.5);
    CHECK(h.count() == 4);
    CHECK(r.render() ==
          "# HELP pw_latency_seconds Latency.\n"
          "# TYPE pw_latency_seconds histogram\n"
          "pw_latency_seconds_bucket{le=\"0.0005\"} 2\n"
          "pw_latency_seconds_bucket{le=\"0.01\"} 3\n"
          "pw_latency_seconds_bucket{le=\"1\"} 3\n"
          "pw_latency_seconds_bucket{le=\"+Inf\"} 4\n"
          "pw_latency_seconds_sum 2.5056\n"
          "pw_latency_seconds_count 4\n");
    CHECK_THROWS_AS(metrics::Histogram(r, "pw_bad", "x", {1, 1}), std::invalid_argument);
    auto buckets = metrics::latency_buckets();
    CHECK(std::is_sorted(buckets.begin(), buckets.end()));
}

TEST_CASE("label values and HELP text are escaped", "[metrics]") {
    CHECK(metrics::escape_label_value("a\\b\"c\nd") == "a\\\\b\\\"c\\nd");
    CHECK(metrics::escape_label_value("plain-text.ok") == "plain-text.ok");
    metrics::Registry r;
    metrics::CounterFamily odd(r, "pw_odd_total", "Back\\slash \"quoted\"\nsecond line", "v",
                               {"say \"hi\"\\\n"});
    CHECK(r.render() ==
          "# HELP pw_odd_total Back\\\\slash \"quoted\"\\nsecond line\n"
          "# TYPE pw_odd_total counter\n"
          "pw_odd_total{v=\"say \\\"hi\\\"\\\\\\n\"} 0\n");
}

TEST_CASE("sample values: integers, fixed decimals, infinities and NaN", "[metrics]") {
    CHECK(metrics::format_value(0) == "0");
    CHECK(metrics::format_value(1) == "1");
    CHECK(metrics::format_value(0.00025) == "0.00025");
    CHECK(metrics::format_value(2.5) == "2.5");
    CHECK(metrics::format_value(1e-9) == "1e-09");
    CHECK(metrics::format_value(1.0 / 0.0) == "+Inf");
    CHECK(metrics::format_value(-1.0 / 0.0) == "-Inf");
    CHECK(metrics::format_value(0.0 / 0.0) == "NaN");
}

TEST_CASE("bad names, reserved labels and duplicates are refused", "[metrics]") {
    metrics::Registry r;
    CHECK_THROWS_AS(metrics::Counter(r, "1starts_with_digit", "x"), std::invalid_argument);
    CHECK_THROWS_AS(metrics::Counter(r, "has-dash", "x"), std::invalid_argument);
    CHECK_THROWS_AS(metrics::CounterFamily(r, "pw_a_total", "x", "le", {"1"}),
                    std::invalid_argument);
    CHECK_THROWS_AS(metrics::CounterFamily(r, "pw_b_total", "x", "__name", {"1"}),
                    std::invalid_argument);
    CHECK_THROWS_AS(metrics::CounterFamily(r, "pw_c_total", "x", {"a", "b"}, {{"only one"}}),
                    std::invalid_argument);
    metrics::Counter first(r, "pw_once_total", "x");
    CHECK_THROWS_AS(metrics::Counter(r, "pw_once_total", "x"), std::invalid_argument);
    // what failed left nothing behind
    CHECK(r.render() == "# HELP pw_once_total x\n# TYPE pw_once_total counter\npw_once_total 0\n");
}

TEST_CASE("counting from many threads at once loses nothing", "[metrics]") {
    metrics::Registry r;
    metrics::Counter c(r, "pw_c_total", "x");
    metrics::Histogram h(r, "pw_h_seconds", "x", {0.5});
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 100000; ++i) {
                c.inc();
                h.observe(1.0);
            }
        });
    for (auto& t : threads)
        t.join();
    CHECK(c.value() == 400000);
    CHECK(h.count() == 400000);
    CHECK(h.sum() == 400000.0);
}

TEST_CASE("policyd files requests by protocol_state and decisions by action and reason",
          "[metrics]") {
    auto& m = policy::metrics();
    auto rcpt = m.requests.find({"RCPT"}), other = m.requests.size() - 1;
    auto before_rcpt = m.requests.value(rcpt), before_other = m.requests.value(other);
    policy::count_request("RCPT");
    policy::count_request("SOMETHING-NEW");
    CHECK(m.requests.value(rcpt) == before_rcpt + 1);
    CHECK(m.requests.value(other) == before_other + 1);

    auto grey = m.decisions.find({"DEFER_IF_PERMIT", "greylist"});
    auto unknown = m.decisions.size() - 1;
    REQUIRE(grey != metrics::CounterFamily::npos);
    auto before_grey = m.decisions.value(grey), before_unknown = m.decisions.value(unknown);
    policy::count_decision("DEFER_IF_PERMIT 4.7.1 Greylisted, please try again in 300 seconds",
                           "greylist");
    policy::count_decision("REJECT 5.7.1 x", "greylist");  // no such pair: counted as other
    CHECK(m.decisions.value(grey) == before_grey + 1);
    CHECK(m.decisions.value(unknown) == before_unknown + 1);
    // every reason docs/metrics.md lists has a series
    for (auto reason :
         {"block-login", "block-sender", "block-net", "block-tld", "allow", "outbound", "greylist",
          "greylist-passed", "greylist-known", "greylist-client", "greylist-off", "spf-handoff",
          "quota-ok", "quota-throttled", "quota-blocked", "quota-commit", "lists-unavailable",
          "greylist-unavailable", "quota-unavailable"}) {
        bool found = false;
        for (auto action : {"DUNNO", "DEFER_IF_PERMIT", "DEFER", "PREPEND", "REJECT"})
            found = found || m.decisions.find({action, reason}) != metrics::CounterFamily::npos;
        CHECK(found);
    }
}
