// auth_cli_test.cpp — `postwarden auth status|unlock` and the lockouts in `postwarden blocked`,
// on state written by common/redis/lua/auth_fail.lua as policyd calls it (SPEC §8).
#include <catch2/catch.hpp>

#include "common/auth_keys.hpp"
#include "common/clock.hpp"
#include "common/config.hpp"
#include "common/redis/scripts.hpp"
#include "tests/admin/support.hpp"

using namespace postwarden;
using namespace postwarden::test;

namespace {

bool has(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

// One failure as policyd records it: for the client (with its lock) and for the login.
void fail(RedisServer& redis, const std::string& client, const std::string& login, int n) {
    auto config = default_config();
    auto keys = auth_address_keys(client, config);
    const auto now = std::to_string(unix_now_ms());
    for (int i = 0; i < n; ++i) {
        auto id = now + "-" + std::to_string(i);
        auto r = redis.run({"EVAL", std::string(script_text("auth_fail")), "2", keys.fails,
                            keys.lock, now, "600000", "3", "3600000", id});
        if (r.elements.at(0).str == "locked")  // policyd indexes the lockout
            redis.run({"ZADD", auth_locked_index_key(config),
                       std::to_string(r.elements.at(1).integer), client});
        redis.run({"EVAL", std::string(script_text("auth_fail")), "1",
                   auth_login_key(login, config), now, "600000", "7", "0", id});
    }
}

}  // namespace

TEST_CASE("admin auth: status and unlock of a locked address and of a login", "[admin][auth]") {
    RedisServer redis;
    Cli cli(redis, "[auth]\nip_lockout = 3/600\n");
    fail(redis, "192.0.2.7", "bob@example.com", 3);  // locks the client
    fail(redis, "2001:db8:1:2::/64", "carol", 1);    // counts, no lock

    auto r = cli.run({"auth", "status", "192.0.2.7"});
    INFO(r.out << r.err);
    CHECK(r.code == 0);
    CHECK(has(r.out, "192.0.2.7: locked until 20"));
    r = cli.run({"--json", "auth", "status", "2001:db8:1:2::99"});
    CHECK(json_query(r.out, "[d['address'], d['locked'], d['failures'], d['limit']]") ==
          R"(["2001:db8:1:2::/64", false, 1, "3/600"])");
    r = cli.run({"--json", "auth", "status", "Bob@Example.com"});
    CHECK(json_query(r.out, "[d['login'], d['locked'], d['failures'], d['delay']]") ==
          R"(["bob@example.com", false, 3, 1])");

    r = cli.run({"blocked"});
    CHECK(r.code == 0);
    CHECK(has(r.out, "auth:lockout  192.0.2.7"));
    CHECK(has(r.out, "too many failed logins, locked until 20"));
    CHECK_FALSE(has(r.out, "2001:db8"));

    r = cli.run({"auth", "unlock", "192.0.2.7"});
    CHECK(r.code == 0);
    CHECK(has(r.out, "removed the lockout of 192.0.2.7"));
    CHECK(redis.run({"EXISTS", "pw:auth:{addr:192.0.2.7}:lock"}).integer == 0);
    CHECK(redis.run({"ZCARD", "pw:auth:locked"}).integer == 0);
    r = cli.run({"auth", "unlock", "192.0.2.7"});
    CHECK(r.code == 1);
    CHECK(has(r.err, "192.0.2.7 is neither locked"));
    CHECK(cli.run({"blocked"}).out == "nothing is blocked\n");
    // an index entry whose lock was deleted by hand is not shown
    redis.run({"ZADD", "pw:auth:locked", std::to_string(unix_now_ms() + 60000), "192.0.2.99"});
    CHECK(cli.run({"blocked"}).out == "nothing is blocked\n");
}

TEST_CASE("admin auth: block:auth shows in blocked, unlock takes a login off it", "[admin][auth]") {
    RedisServer redis;
    Cli cli(redis);
    redis.run({"SADD", "pw:block:auth", "cracked@example.com"});
    fail(redis, "192.0.2.1", "cracked@example.com", 1);
    auto r = cli.run({"auth", "status", "cracked@example.com"});
    CHECK(has(r.out, "cracked@example.com: locked (block:auth), 1 failed login(s)"));
    r = cli.run({"--json", "blocked"});
    CHECK(json_query(r.out, "[(b['list'], b['member']) for b in d['blocked']]") ==
          R"([["block:auth", "cracked@example.com"]])");
    r = cli.run({"auth", "unlock", "Cracked@Example.com"});
    CHECK(r.code == 0);
    CHECK(has(r.out, "removed block:auth of cracked@example.com"));
    CHECK(has(r.out, "removed the failed logins of cracked@example.com"));
    CHECK(redis.run({"SCARD", "pw:block:auth"}).integer == 0);
    CHECK(cli.run({"auth", "lock", "x"}).code == 2);
    CHECK(cli.run({"auth", "status"}).code == 2);
}
