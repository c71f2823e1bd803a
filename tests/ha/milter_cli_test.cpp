// milter_cli_test.cpp — postwarden-milter and the admin CLI `postwarden` with [redis] sentinels:
// both find the master through the Sentinels, and after a failover (SENTINEL FAILOVER) the
// milter, still running, is on the new master and the CLI edits the new master.
#include <catch2/catch.hpp>

#include "tests/admin/support.hpp"
#include "tests/fixtures/redis_ha.hpp"
#include "tests/milter/support.hpp"

using namespace postwarden::test;
using namespace std::chrono_literals;

namespace {

// An authenticated user sending as an alias: MAIL FROM needs alias:<login> in Redis (S8).
Transaction submission() {
    Transaction t;
    t.client_ip = "198.51.100.44";
    t.login = "alice@rcpt.example";
    t.sender = "shared@rcpt.example";
    t.headers = headers_from("shared@rcpt.example");
    return t;
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE(
    "sentinel: the milter and the CLI find the master through the Sentinels and follow a "
    "failover",
    "[ha][milter][admin]") {
    RedisHa ha;
    DnsServer dns(zone());
    const std::string redis = "[redis]\n" + ha.redis_config() + "timeout_ms = 250\n";
    MilterProcess milter("authserv_id = mx.rcpt.example\n" + redis +
                         "[dns]\nnameservers = " + dns.nameserver() + "\ntimeout_ms = 400\n");
    Cli cli(redis);

    auto r = cli.run({"list", "add", "block:sender", "before@example.com"});
    INFO(r.err);
    REQUIRE(r.code == 0);
    CHECK(ha.run({"SISMEMBER", "pw:block:sender", "before@example.com"}).integer == 1);
    ha.run({"SADD", "pw:alias:alice@rcpt.example", "shared@rcpt.example"});
    CHECK(MilterClient(milter.port()).run(submission()).accepted());
    ha.sync_replicas();

    const auto old = ha.master().port();
    ha.failover();
    ha.wait_for_switch(old, 20s);
    const auto now = std::to_string(ha.master().port());
    REQUIRE(now != std::to_string(old));

    // The milter moved without a restart, and answers from there.
    CHECK(wait_until([&] { return contains(milter.log(), "restored at 127.0.0.1:" + now); }, 5s));
    CHECK(MilterClient(milter.port()).run(submission()).accepted());
    CHECK(milter.process().running());

    // The CLI edits the new master and reads what was replicated before the failover.
    r = cli.run({"list", "add", "block:sender", "after@example.com"});
    REQUIRE(r.code == 0);
    CHECK(ha.run({"SISMEMBER", "pw:block:sender", "after@example.com"}).integer == 1);
    r = cli.run({"list", "show", "block:sender"});
    CHECK(r.code == 0);
    CHECK(contains(r.out, "before@example.com"));
    CHECK(contains(r.out, "after@example.com"));
}
