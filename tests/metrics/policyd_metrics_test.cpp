// policyd_metrics_test.cpp — postwarden-policyd's Prometheus endpoint ([metrics] policyd_listen)
// against a real redis-server and DNS server: requests, decisions, connections, protocol errors,
// refusals, Redis and DNS measured as real traffic moves them; every scrape passes promtool; the
// HTTP side answers only GET /metrics and bounds what a client may send.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <unistd.h>
#include <memory>
#include <vector>

#include "tests/fixtures/dns_server.hpp"
#include "tests/fixtures/policyd_process.hpp"
#include "tests/fixtures/redis_server.hpp"
#include "tests/metrics/scrape.hpp"

using namespace postwarden::test;
using namespace std::chrono_literals;

namespace {

const std::string spf_zone = "sender.example TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n";

std::string config_for(RedisServer& redis, DnsServer& dns, unsigned short metrics_port,
                       const std::string& extra = "") {
    return "[redis]\naddress = " + redis.endpoint().to_string() +
           "\ntimeout_ms = 200\n[dns]\nnameservers = " + dns.nameserver() +
           "\ntimeout_ms = 500\n[metrics]\npolicyd_listen = 127.0.0.1:" +
           std::to_string(metrics_port) + "\n" + extra;
}

std::string requests(const std::string& state) {
    return "postwarden_policyd_requests_total{protocol_state=\"" + state + "\"}";
}
std::string decisions(const std::string& action, const std::string& reason) {
    return "postwarden_policyd_decisions_total{action=\"" + action + "\",reason=\"" + reason +
           "\"}";
}
const std::string connections = "postwarden_policyd_connections";
const std::string redis_count = "postwarden_policyd_redis_command_duration_seconds_count";

}  // namespace

TEST_CASE("policyd: requests, decisions, connections, Redis and DNS move the counters",
          "[metrics]") {
    RedisServer redis;
    DnsServer dns(spf_zone);
    auto port = free_port();
    PolicydProcess policyd(config_for(redis, dns, port, "[policyd]\nmax_connections = 3\n"));
    auto start = scrape(port);
    INFO(start);
    CHECK(sample(start, requests("RCPT")) == 0);
    // the fixture's readiness probe connected once and left
    CHECK(wait_until([&] { return sample(scrape(port), connections) == 0; }, 5s));
    double redis_at_start = sample(start, redis_count);

    redis.run({"SADD", "pw:block:net", "203.0.113.0/24"});
    {
        PolicyClient client(policyd.port());
        // SPF fails for this client: greylisted
        CHECK(client.ask(inbound("198.51.100.1", "a@sender.example", "b@example.net"))
                  .rfind("DEFER_IF_PERMIT 4.7.1", 0) == 0);
        // SPF passes: handed to the milter
        CHECK(client.ask(inbound("192.0.2.1", "a@sender.example", "b@example.net")) == "DUNNO");
        CHECK(
            client.ask(inbound("203.0.113.5", "x@y.example", "b@example.net")).rfind("REJECT", 0) ==
            0);
        auto eom = inbound("198.51.100.1", "a@sender.example", "b@example.net");
        eom["protocol_state"] = "END-OF-MESSAGE";
        CHECK(client.ask(eom) == "DUNNO");

        auto text = scrape(port);
        INFO(text);
        CHECK(sample(text, connections) == 1);
        CHECK(sample(text, "postwarden_policyd_connections_accepted_total") == 2);  // probe, ours
        CHECK(sample(text, requests("RCPT")) == 3);
        CHECK(sample(text, requests("END-OF-MESSAGE")) == 1);
        CHECK(sample(text, decisions("DEFER_IF_PERMIT", "greylist")) == 1);
        CHECK(sample(text, decisions("DUNNO", "spf-handoff")) == 1);
        CHECK(sample(text, decisions("REJECT", "block-net")) == 1);
        CHECK(sample(text, decisions("other", "other")) == 0);
        // greylist.lua for the deferred triplet at least; every reply is also in a bucket
        CHECK(sample(text, redis_count) > redis_at_start);
        CHECK(
            sample(text, "postwarden_policyd_redis_command_duration_seconds_bucket{le=\"+Inf\"}") ==
            sample(text, redis_count));
        CHECK(sample(text, "postwarden_policyd_redis_command_duration_seconds_sum") > 0);
        // two SPF checks (the blocked network never gets that far), each one TXT lookup or more;
        // the second check gets the record from the DNS answer cache
        CHECK(sample(text, "postwarden_policyd_spf_check_duration_seconds_count") == 2);
        CHECK(sample(text, "postwarden_policyd_dns_lookups_total{status=\"ok\"}") >= 1);
        CHECK(sample(text, "postwarden_policyd_dns_lookup_duration_seconds_count") >= 1);
        CHECK(sample(text, "postwarden_policyd_dns_cache_lookups_total{result=\"hit\"}") >= 1);
        CHECK(sample(text, "postwarden_policyd_dns_cache_lookups_total{result=\"miss\"}") ==
              sample(text, "postwarden_policyd_dns_lookup_duration_seconds_count"));
        CHECK(promtool_check(text) == "");
    }
    CHECK(wait_until([&] { return sample(scrape(port), connections) == 0; }, 5s));

    {
        PolicyClient broken(policyd.port());
        broken.send_raw("this line has no equals sign\n\n");
        CHECK(broken.read_reply().rfind("DEFER_IF_PERMIT 4.3.0 Policy request malformed", 0) == 0);
    }
    CHECK(sample(scrape(port), "postwarden_policyd_protocol_errors_total") == 1);

    CHECK(wait_until([&] { return sample(scrape(port), connections) == 0; }, 5s));
    {
        std::vector<std::unique_ptr<PolicyClient>> held;
        for (int i = 0; i < 3; ++i) {
            held.push_back(std::make_unique<PolicyClient>(policyd.port()));
            CHECK(held.back()->ask(inbound("192.0.2.1", "a@sender.example", "b@example.net")) ==
                  "DUNNO");
        }
        CHECK(sample(scrape(port), connections) == 3);
        PolicyClient refused(policyd.port());
        CHECK(refused.closed_by_peer(2s));
        CHECK(sample(scrape(port), "postwarden_policyd_connections_refused_total") == 1);
    }

    // Redis gone: answered per fail_mode (open), and the failed commands are counted
    redis.stop();
    CHECK(wait_until([&] { return sample(scrape(port), connections) == 0; }, 5s));
    PolicyClient client(policyd.port());
    CHECK(client.ask(inbound("198.51.100.9", "c@sender.example", "d@example.net")) == "DUNNO");
    auto text = scrape(port);
    INFO(text << policyd.log());
    CHECK(sample(text, decisions("DUNNO", "greylist-unavailable")) == 1);
    CHECK(sample(text, "postwarden_policyd_redis_failures_total{error=\"not_connected\"}") +
              sample(text, "postwarden_policyd_redis_failures_total{error=\"connection_lost\"}") >=
          1);
    CHECK(promtool_check(text) == "");
}

TEST_CASE("policyd: the endpoint serves only GET /metrics, bounded", "[metrics]") {
    RedisServer redis;
    DnsServer dns(spf_zone);
    auto port = free_port();
    PolicydProcess policyd(config_for(redis, dns, port));

    auto ok = http_request(port, "GET", "/metrics");
    CHECK(ok.status == 200);
    CHECK(ok.headers.find("Content-Type: text/plain; version=0.0.4") != std::string::npos);
    CHECK(http_request(port, "GET", "/").status == 404);
    CHECK(http_request(port, "GET", "/metrics/x").status == 404);
    CHECK(http_request(port, "POST", "/metrics").status == 405);
    CHECK(http_request(port, "GET", "/metrics?x=1").status == 200);

    // Headers past 8 KiB: 400 and the connection ends.
    int fd = connect_loopback(port);
    REQUIRE(fd >= 0);
    std::string big =
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(20000, 'a') + "\r\n\r\n";
    ::send(fd, big.data(), big.size(), MSG_NOSIGNAL);
    char reply[64] = {};
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    CHECK(recv(fd, reply, sizeof reply - 1, 0) > 0);
    CHECK(std::string(reply).rfind("HTTP/1.1 400", 0) == 0);
    close(fd);

    // A silent connection is closed after 10 s, the endpoint still serves others meanwhile.
    fd = connect_loopback(port);
    REQUIRE(fd >= 0);
    auto opened = std::chrono::steady_clock::now();
    CHECK(http_request(port, "GET", "/metrics").status == 200);
    tv = timeval{15, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    CHECK(recv(fd, reply, sizeof reply, 0) == 0);  // EOF, not a timeout of ours
    auto waited = std::chrono::steady_clock::now() - opened;
    CHECK(waited >= 9s);
    CHECK(waited < 14s);
    close(fd);
}

TEST_CASE("policyd: connections that send nothing cannot keep a scrape out", "[metrics]") {
    RedisServer redis;
    DnsServer dns(spf_zone);
    auto port = free_port();
    PolicydProcess policyd(config_for(redis, dns, port));
    // More silent connections than the endpoint keeps, renewed as they go: each scrape still
    // gets its answer, and the connection that waited longest is the one closed for it.
    std::vector<int> idle;
    for (int i = 0; i < 20; ++i) {
        int fd = connect_loopback(port);
        REQUIRE(fd >= 0);
        idle.push_back(fd);
    }
    for (int round = 0; round < 3; ++round) {
        CHECK(http_request(port, "GET", "/metrics").status == 200);
        for (int i = 0; i < 16; ++i) {
            int fd = connect_loopback(port);
            REQUIRE(fd >= 0);
            idle.push_back(fd);
        }
    }
    CHECK(http_request(port, "GET", "/metrics").status == 200);
    // The first silent connection was closed to make room.
    char c;
    timeval tv{2, 0};
    setsockopt(idle.front(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    CHECK(recv(idle.front(), &c, 1, 0) == 0);
    for (int fd : idle)
        close(fd);
}

TEST_CASE("policyd: a metrics address that cannot be bound stops the daemon", "[metrics]") {
    RedisServer redis;
    DnsServer dns(spf_zone);
    // The Redis port is taken: listening there fails.
    CHECK_THROWS_WITH(PolicydProcess(config_for(redis, dns, redis.port())),
                      Catch::Contains("for metrics: Address already in use"));
}
