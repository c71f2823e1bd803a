// milter_metrics_test.cpp — postwarden-milter's Prometheus endpoint ([metrics] milter_listen),
// spoken to over the milter protocol with messages signed by python3-dkim, against a real DNS
// server and redis-server: sessions, messages, SPF/DKIM/DMARC verdicts, actions (S8 refusals
// included), Redis and DNS, each scrape checked by promtool.
#include <catch2/catch.hpp>

#include "tests/metrics/scrape.hpp"
#include "tests/milter/support.hpp"

using namespace postwarden::test;
using namespace std::chrono_literals;

namespace {

std::string verdicts(const std::string& mechanism, const std::string& result) {
    return "postwarden_milter_verdicts_total{mechanism=\"" + mechanism + "\",result=\"" + result +
           "\"}";
}
std::string actions(const std::string& action, const std::string& reason) {
    return "postwarden_milter_actions_total{action=\"" + action + "\",reason=\"" + reason + "\"}";
}
const std::string sessions = "postwarden_milter_sessions";

Transaction signed_mail() {
    Transaction t;
    t.sender = "news@sender.test";
    t.headers = headers_from("News <news@sender.test>");
    t.body = "Hello,\r\n\r\nthis is a test.\r\n";
    t.headers.insert(t.headers.begin(),
                     {"DKIM-Signature", sign(t.headers, t.body, "rsa", "rsa", "sender.test")});
    return t;
}

Transaction submission(const std::string& sender) {
    Transaction t;
    t.client_ip = "198.51.100.44";
    t.login = "alice@rcpt.example";
    t.sender = sender;
    t.headers = headers_from(sender);
    return t;
}

}  // namespace

TEST_CASE("milter: sessions, messages, verdicts, actions, Redis and DNS move the counters",
          "[metrics]") {
    RedisServer redis;
    DnsServer dns{zone()};
    auto port = free_port();
    MilterProcess milter(config(redis, dns,
                                "[greylist]\nenabled = no\n[metrics]\nmilter_listen = 127.0.0.1:" +
                                    std::to_string(port) + "\n"));
    auto start = scrape(port);
    CHECK(sample(start, sessions) == 0);
    CHECK(sample(start, verdicts("spf", "pass")) == 0);

    {
        MilterClient client(milter.port());
        auto out = client.run(signed_mail());
        CHECK(out.accepted());
        auto text = scrape(port);
        INFO(text);
        CHECK(sample(text, sessions) == 1);  // the MTA connection is still open
        CHECK(sample(text, "postwarden_milter_sessions_total") == 1);
    }
    CHECK(wait_until([&] { return sample(scrape(port), sessions) == 0; }, 5s));

    auto forged = signed_mail();
    forged.body += "appended by a forger\r\n";
    forged.client_ip = "203.0.113.9";
    CHECK(MilterClient(milter.port()).run(forged).reply == 'y');

    redis.run({"SADD", "pw:alias:alice@rcpt.example", "shared@rcpt.example"});
    CHECK(MilterClient(milter.port()).run(submission("boss@rcpt.example")).stage == 'M');
    CHECK(MilterClient(milter.port()).run(submission("shared@rcpt.example")).accepted());

    auto text = scrape(port);
    INFO(text << milter.log());
    CHECK(sample(text, "postwarden_milter_messages_total{direction=\"inbound\"}") == 2);
    CHECK(sample(text, "postwarden_milter_messages_total{direction=\"outbound\"}") == 1);
    CHECK(sample(text, verdicts("spf", "pass")) == 1);
    CHECK(sample(text, verdicts("spf", "fail")) == 1);
    CHECK(sample(text, verdicts("dkim", "pass")) == 1);
    CHECK(sample(text, verdicts("dkim", "fail")) == 1);
    CHECK(sample(text, verdicts("dmarc", "pass")) == 1);
    CHECK(sample(text, verdicts("dmarc", "fail")) == 1);
    CHECK(sample(text, actions("accept", "verified")) == 1);
    CHECK(sample(text, actions("reject", "dmarc")) == 1);
    CHECK(sample(text, actions("reject", "sender-login-mismatch")) == 1);
    CHECK(sample(text, actions("accept", "outbound")) == 1);
    CHECK(sample(text, actions("other", "other")) == 0);
    CHECK(sample(text, "postwarden_milter_sessions_total") == 4);
    CHECK(sample(text, "postwarden_milter_errors_total") == 0);
    CHECK(sample(text, "postwarden_milter_redis_command_duration_seconds_count") >= 2);
    // the first message's SPF record, DKIM key and DMARC record came from the network; the
    // forged copy asks the same and gets them from the DNS answer cache
    CHECK(sample(text, "postwarden_milter_dns_lookups_total{status=\"ok\"}") >= 3);
    CHECK(sample(text, "postwarden_milter_dns_lookup_duration_seconds_count") >= 3);
    CHECK(sample(text, "postwarden_milter_dns_cache_lookups_total{result=\"hit\"}") >= 3);
    CHECK(sample(text, "postwarden_milter_dns_cache_lookups_total{result=\"miss\"}") ==
          sample(text, "postwarden_milter_dns_lookup_duration_seconds_count"));
    CHECK(promtool_check(text) == "");

    // Redis gone: S8 answers tempfail, never a reject, and the failure is counted
    redis.stop();
    auto out = MilterClient(milter.port()).run(submission("shared@rcpt.example"));
    CHECK(out.text.rfind("451 4.3.0", 0) == 0);
    text = scrape(port);
    INFO(text);
    CHECK(sample(text, actions("tempfail", "sender-login-mismatch")) == 1);
    CHECK(sample(text, "postwarden_milter_redis_failures_total{error=\"not_connected\"}") +
              sample(text, "postwarden_milter_redis_failures_total{error=\"connection_lost\"}") >=
          1);
    CHECK(promtool_check(text) == "");
}
