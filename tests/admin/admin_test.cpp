// admin_test.cpp — the admin CLI `postwarden` (SPEC §7) from the build tree against a real
// redis-server: keys are written as the daemons write them (quota.lua and greylist.lua run with
// EVAL, block:why from policyd's block_reason), and the CLI's text, --json output (checked by
// Python's json module) and exit codes are what is tested. Lists: validation refuses malformed
// members and stores nothing; what is stored is what policyd looks up.
#include <catch2/catch.hpp>

#include <chrono>

#include "common/greylist.hpp"
#include "common/inet.hpp"
#include "common/redis/scripts.hpp"
#include "policyd/quota.hpp"
#include "tests/admin/support.hpp"

using namespace postwarden;
using namespace postwarden::test;

namespace {

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

long long now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::vector<std::string> members(RedisServer& redis, const std::string& key) {
    std::vector<std::string> out;
    for (const auto& e : redis.run({"SMEMBERS", key}).elements)
        out.push_back(e.str);
    std::sort(out.begin(), out.end());
    return out;
}

redis::Value eval(RedisServer& redis, const std::string& script,
                  const std::vector<std::string>& keys, const std::vector<std::string>& args) {
    std::vector<std::string> argv{"EVAL", std::string(script_text(script)),
                                  std::to_string(keys.size())};
    argv.insert(argv.end(), keys.begin(), keys.end());
    argv.insert(argv.end(), args.begin(), args.end());
    return redis.run(argv);
}

std::shared_ptr<const Config> config_of(const std::string& text) {
    std::string error;
    auto c = parse_config(text, "test", &error);
    INFO(error);
    REQUIRE(c);
    return c;
}

}  // namespace

TEST_CASE("list add stores lower-cased, canonical members, show and del", "[admin][cluster]") {
    RedisServer redis;
    Cli cli(redis);

    auto r = cli.run({"list", "add", "block:net", "192.0.2.0/24", "2001:DB8:0::/32", "198.51.100.7",
                      "::ffff:203.0.113.9"});
    INFO(r.out << r.err);
    CHECK(r.code == 0);
    CHECK(members(redis, "pw:block:net") ==
          std::vector<std::string>{"192.0.2.0/24", "198.51.100.7", "2001:db8::/32", "203.0.113.9"});
    // What was stored is what policyd asks the set for.
    auto candidates = network_candidates(*parse_ip("2001:db8:1::5"));
    CHECK(std::find(candidates.begin(), candidates.end(), "2001:db8::/32") != candidates.end());

    r = cli.run({"list", "add", "BLOCK:Sender", "Spammer@Example.COM"});
    CHECK(r.code == 0);
    CHECK(contains(r.out, "added spammer@example.com to block:sender"));
    CHECK(members(redis, "pw:block:sender") == std::vector<std::string>{"spammer@example.com"});

    // block:auth is read by the auth-policy server with the login lower-cased, as here.
    r = cli.run({"list", "add", "block:auth", "Cracked@Example.COM"});
    CHECK(r.code == 0);
    CHECK(members(redis, "pw:block:auth") == std::vector<std::string>{"cracked@example.com"});

    r = cli.run({"list", "add", "allow:sender:Example.NET", "Partner@Example.org"});
    CHECK(r.code == 0);
    CHECK(members(redis, "pw:allow:sender:example.net") ==
          std::vector<std::string>{"partner@example.org"});

    r = cli.run({"list", "add", "block:tld", "ICU"});
    CHECK(r.code == 0);
    r = cli.run({"list", "add", "alias:Alice@Example.com", "Sales@Example.com", "@Example.ORG"});
    CHECK(r.code == 0);
    CHECK(members(redis, "pw:alias:alice@example.com") ==
          std::vector<std::string>{"@example.org", "sales@example.com"});

    // Adding again is not an error: the wanted state holds.
    r = cli.run({"list", "add", "block:tld", "icu"});
    CHECK(r.code == 0);
    CHECK(contains(r.out, "icu was already on block:tld"));

    r = cli.run({"list", "show", "block:net"});
    CHECK(r.code == 0);
    CHECK(r.out == "192.0.2.0/24\n198.51.100.7\n2001:db8::/32\n203.0.113.9\n");
    r = cli.run({"--json", "list", "show", "block:net"});
    CHECK(json_query(r.out, "d['members']") ==
          R"(["192.0.2.0/24", "198.51.100.7", "2001:db8::/32", "203.0.113.9"])");

    // show with members is a membership test, spelled as the daemons spell them.
    r = cli.run({"list", "show", "block:net", "2001:db8:0::/32"});
    CHECK(r.code == 0);
    r = cli.run({"list", "show", "block:net", "192.0.2.0/24", "192.0.2.77"});
    CHECK(r.code == 1);
    CHECK(r.out == "192.0.2.0/24  listed\n192.0.2.77    not listed\n");
    r = cli.run({"list", "show", "--json", "block:net", "192.0.2.77"});
    CHECK(json_query(r.out, "d['members']") == R"([{"listed": false, "member": "192.0.2.77"}])");

    r = cli.run({"list", "del", "block:net", "192.0.2.0/24", "10.0.0.0/8"});
    CHECK(r.code == 0);
    CHECK(contains(r.out, "removed 192.0.2.0/24 from block:net"));
    CHECK(contains(r.out, "10.0.0.0/8 was not on block:net"));
    r = cli.run({"--json", "list", "del", "block:net", "192.0.2.0/24"});
    CHECK(r.code == 1);
    CHECK(json_query(r.out, "[d['removed'], d['not_listed']]") == R"([[], ["192.0.2.0/24"]])");
    CHECK(contains(r.err, "nothing removed"));

    // A malformed entry written by hand can still be removed.
    redis.run({"SADD", "pw:block:net", "not a network"});
    r = cli.run({"list", "del", "block:net", "not a network"});
    CHECK(r.code == 0);
}

TEST_CASE("list add refuses malformed members and stores none of them", "[admin]") {
    RedisServer redis;
    Cli cli(redis);
    struct Bad {
        std::vector<std::string> args;
        std::string why;
    };
    std::vector<Bad> cases = {
        {{"block:net", "203.0.113.0/24", "10.1.2.3/8"}, "host bits set (did you mean 10.0.0.0/8?)"},
        {{"block:net", "203.0.113.0/24", "192.0.2.0/33"}, "bad prefix length"},
        {{"block:net", "203.0.113.0/24", "example.com"}, "not an IP address or CIDR"},
        {{"block:sender", "ok@example.com", "no-at-sign"}, "no '@'"},
        {{"block:sender", "ok@example.com", "<x@example.com>"}, "without <>"},
        {{"block:sender", "ok@example.com", "x@exa_mple.com"}, "not allowed"},
        {{"block:sender", "ok@example.com", "x@-bad.example"}, "starts or ends with '-'"},
        {{"block:domain", "example.com", "@example.org"}, "without '@'"},
        {{"block:domain", "example.com", "*.example.org"}, "covers its subdomains"},
        {{"block:domain", "example.com", "example.org."}, "trailing dot"},
        {{"block:domain", "example.com", "a..example"}, "empty label"},
        {{"block:tld", "icu", ".xyz"}, "without the dot"},
        {{"block:tld", "icu", "co.uk"}, "one label only"},
        {{"block:login", "alice", "bad login"}, "space"},
        {{"alias:alice", "a@example.com", "@"}, "empty domain"},
        {{"allow:net:example.net", "192.0.2.1", "192.0.2.1/24"}, "host bits set"},
    };
    for (const auto& c : cases) {
        std::vector<std::string> args = {"list", "add"};
        args.insert(args.end(), c.args.begin(), c.args.end());
        auto r = cli.run(args);
        INFO(c.args[0] << " " << c.args[2] << ": " << r.err);
        CHECK(r.code == 2);
        CHECK(contains(r.err, c.why));
        CHECK(contains(r.err, "nothing was stored"));
        CHECK(r.out.empty());
    }
    CHECK(redis.run({"DBSIZE"}).integer == 0);

    auto r = cli.run({"list", "add", "block:bogus", "x"});
    CHECK(r.code == 2);
    CHECK(contains(r.err, "unknown list 'block:bogus'"));
    CHECK(contains(r.err, "block:sender"));
    r = cli.run({"list", "add", "block:sender:bad..domain", "x@example.com"});
    CHECK(r.code == 2);
    r = cli.run({"list", "add", "block:login:example.com", "alice"});
    CHECK(r.code == 2);
    r = cli.run({"--json", "list", "add", "block:net", "10.1.2.3/8"});
    CHECK(r.code == 2);
    CHECK(json_query(r.out, "d['exit_code']") == "2");
    CHECK(contains(json_query(r.out, "d['error']"), "host bits set"));
    CHECK(redis.run({"DBSIZE"}).integer == 0);
}

TEST_CASE("blocked shows block:why as auto_block writes it, unblock lifts it", "[admin][cluster]") {
    RedisServer redis;
    Cli cli(redis);
    auto config = config_of("[quota]\nauto_block = 3000/3600\n");
    // As policyd writes an auto_block (policyd/quota_store.cpp): the reason, then the login.
    policy::QuotaOutcome outcome{policy::QuotaVerdict::blocked, 0, 1, 3001};
    auto reason = policy::block_reason(outcome, *config, 1714556477000);  // 09:41:17Z
    redis.run({"HSET", "pw:block:why", "alice@example.com", reason});
    redis.run({"SADD", "pw:block:login", "alice@example.com"});
    redis.run({"SADD", "pw:block:sender", "spam@example.org"});
    redis.run({"SADD", "pw:block:domain", "spammy.example"});

    auto r = cli.run({"blocked"});
    INFO(r.out << r.err);
    CHECK(r.code == 0);
    CHECK(contains(r.out, "LIST"));
    CHECK(contains(r.out,
                   "block:login   alice@example.com  2024-05-01T09:41:17Z  auto_block "
                   "3000/3600: 3001 recipients attempted\n"));
    CHECK(contains(r.out, "block:sender  spam@example.org   -"));
    CHECK(contains(r.out, "block:domain  spammy.example"));

    r = cli.run({"blocked", "--json"});
    CHECK(json_query(r.out, "d['blocked'][0]") ==
          R"({"list": "block:login", "member": "alice@example.com", "reason": "auto_block )"
          R"(3000/3600: 3001 recipients attempted", "time": "2024-05-01T09:41:17Z", "why": ")" +
              reason + "\"}");
    CHECK(json_query(r.out, "[b['reason'] for b in d['blocked'][1:]]") == "[null, null]");

    r = cli.run({"unblock", "Alice@Example.com"});
    CHECK(r.code == 0);
    CHECK(contains(r.out, "removed alice@example.com from block:login (auto_block"));
    CHECK(redis.run({"SISMEMBER", "pw:block:login", "alice@example.com"}).integer == 0);
    CHECK(redis.run({"HEXISTS", "pw:block:why", "alice@example.com"}).integer == 0);

    r = cli.run({"--json", "unblock", "spam@example.org"});
    CHECK(r.code == 0);
    CHECK(json_query(r.out, "d['removed_from']") == R"(["block:sender"])");

    r = cli.run({"unblock", "nobody@example.com"});
    CHECK(r.code == 1);
    CHECK(r.out.empty());
    CHECK(contains(r.err, "nobody@example.com is not on block:login or block:sender"));
    r = cli.run({"unblock", "spammy.example"});
    CHECK(r.code == 1);
    CHECK(contains(r.err, "list del block:domain spammy.example"));
    CHECK(members(redis, "pw:block:domain") == std::vector<std::string>{"spammy.example"});

    redis.run({"DEL", "pw:block:domain"});
    r = cli.run({"blocked"});
    CHECK(r.code == 0);
    CHECK(r.out == "nothing is blocked\n");
    r = cli.run({"--json", "blocked"});
    CHECK(r.out == "{\"blocked\":[]}\n");
}

TEST_CASE("quota reads what quota.lua wrote: usage, reservations, throttle", "[admin][cluster]") {
    RedisServer redis;
    const std::string quota_section =
        "[quota]\nlimits = 5/3600, 50/86400\nauto_block = 100/3600\nreserve_ttl = 10\n";
    Cli cli(redis, quota_section);
    auto config = config_of(quota_section);
    auto limits = policy::merge_windows(config->quota.limits);
    auto rcpt = [&](const std::string& instance, int i, long long now,
                    const std::string& login = "alice@example.com") {
        policy::Facts f;
        f.login = login;
        f.instance = instance;
        f.recipient = "r" + std::to_string(i) + "@elsewhere.example";
        auto call = policy::reserve_call(f, limits, now, *config);
        return *policy::parse_reserve_reply(eval(redis, "quota", call.keys, call.args));
    };
    auto commit = [&](const std::string& instance, long count, long long now) {
        policy::Facts f;
        f.login = "alice@example.com";
        f.instance = instance;
        auto call = policy::commit_call(f, count, limits, now, *config);
        eval(redis, "quota", call.keys, call.args);
    };

    auto r = cli.run({"quota", "alice@example.com"});
    INFO(r.out << r.err);
    CHECK(r.code == 0);
    CHECK(contains(r.out, "limits      5/3600, 50/86400 ([quota] limits)"));
    CHECK(contains(r.out, "5/3600    0     5"));
    CHECK(contains(r.out, "throttled   no"));

    auto t = now_ms();
    for (int i = 0; i < 3; ++i)
        CHECK(rcpt("m1", i, t).verdict == policy::QuotaVerdict::reserved);
    commit("m1", 2, t);  // Postfix accepted two: one is given back
    for (int i = 0; i < 3; ++i)
        CHECK(rcpt("m2", i, t).verdict == policy::QuotaVerdict::reserved);
    auto refused = rcpt("m3", 0, t);  // 5/3600 is full
    REQUIRE(refused.verdict == policy::QuotaVerdict::throttled);

    r = cli.run({"quota", "ALICE@example.com"});
    INFO("second: " << r.out << r.err);
    CHECK(r.code == 0);
    CHECK(contains(r.out, "5/3600    5     0\n"));
    CHECK(contains(r.out, "50/86400  5     45\n"));
    CHECK(contains(r.out, "reserved    3 recipients waiting"));
    CHECK(contains(r.out, "auto_block  100/3600: 7 recipients attempted"));
    CHECK(contains(r.out, "throttled   until " + policy::rfc3339(refused.until_ms)));
    CHECK(contains(r.out, "blocked     no"));

    r = cli.run({"--json", "quota", "alice@example.com"});
    CHECK(json_query(r.out, "d['windows']") ==
          R"([{"left": 0, "limit": 5, "seconds": 3600, "used": 5}, )"
          R"({"left": 45, "limit": 50, "seconds": 86400, "used": 5}])");
    CHECK(json_query(r.out, "d['throttled_until_ms']") == std::to_string(refused.until_ms));
    CHECK(json_query(r.out, "[d['reserved'], d['override'], d['blocked']]") == "[3, null, false]");

    // Reservations older than reserve_ttl are given back at the user's next request: they no
    // longer count, though the script has not released them yet.
    rcpt("b1", 0, t - 20000, "bob@example.com");
    rcpt("b1", 1, t - 20000, "bob@example.com");
    r = cli.run({"--json", "quota", "bob@example.com"});
    CHECK(
        json_query(r.out, "[d['windows'][0]['used'], d['reserved'], d['expired_reservations']]") ==
        "[0, 0, 2]");
    CHECK(json_query(r.out, "d['auto_block'][0]['attempted']") == "2");

    // The per-user override is what counts, and an invalid one is reported.
    redis.run({"SET", "pw:quota:limits:alice@example.com", "20/3600"});
    r = cli.run({"quota", "alice@example.com"});
    CHECK(contains(r.out, "limits      20/3600 (quota:limits:alice@example.com)"));
    CHECK(contains(r.out, "20/3600  5     15"));
    redis.run({"SET", "pw:quota:limits:alice@example.com", "lots"});
    r = cli.run({"--json", "quota", "alice@example.com"});
    CHECK(json_query(r.out, "d['override']") == R"("lots")");
    CHECK(json_query(r.out, "d['override_error'] is not None") == "true");
    CHECK(json_query(r.out, "len(d['windows'])") == "2");

    // With quotas off nothing is read, as policyd reads nothing.
    Cli off(redis, "[quota]\nlimits = 0\nauto_block = 0\n");
    r = off.run({"--json", "quota", "alice@example.com"});
    CHECK(r.code == 0);
    CHECK(json_query(r.out, "[d['enabled'], d['windows']]") == "[false, []]");
}

TEST_CASE("greylist stats counts what greylist.lua wrote, with SCAN", "[admin][cluster]") {
    RedisServer redis;
    // A prefix with glob characters: SCAN's MATCH must take it literally.
    const std::string section = "prefix = t*[1]:\n[greylist]\ndelay = 60\nauto_allow_clients = 2\n";
    Cli cli("[redis]\naddress = " + redis.endpoint().to_string() + "\ntimeout_ms = 200\n" +
            section);
    auto config = config_of("[redis]\n" + section);
    auto t = now_ms();
    auto triplet = [&](const std::string& client, const std::string& rcpt, long long now,
                       const std::string& accepted_domain = "") {
        auto keys = greylist_keys(parse_ip(client), "s@example.org", rcpt, "", *config);
        auto args = accepted_domain.empty()
                        ? greylist_args(keys, now, *config)
                        : greylist_count_args(keys, accepted_domain, now, *config);
        return eval(redis, "greylist", {keys.triplet, keys.client}, args).elements.at(0).str;
    };
    // 203.0.113.0/24 passes two triplets and the milter accepted mail of two sender domains on
    // them (auto-allowed), 198.51.100.0/24 one, and three wait: one of them since long enough
    // that its retry will pass.
    for (auto rcpt : {"a@example.net", "b@example.net"}) {
        CHECK(triplet("203.0.113.5", rcpt, t - 120000) == "new");
        CHECK(triplet("203.0.113.5", rcpt, t - 30000) == "passed");
        CHECK(triplet("203.0.113.5", rcpt, t - 20000, std::string(rcpt) + ".example") == "counted");
    }
    CHECK(triplet("198.51.100.9", "a@example.net", t - 120000) == "new");
    CHECK(triplet("198.51.100.9", "a@example.net", t - 30000) == "passed");
    CHECK(triplet("198.51.100.9", "a@example.net", t - 20000, "one.example") == "counted");
    CHECK(triplet("198.51.100.9", "b@example.net", t - 120000) == "new");
    CHECK(triplet("192.0.2.1", "a@example.net", t - 1000) == "new");
    CHECK(triplet("192.0.2.1", "b@example.net", t - 1000) == "new");
    // Keys of another prefix are not counted ("tx[1]:" would match the unescaped pattern).
    redis.run({"SET", "tx1:grey:{192.0.2.0/24}:x:y", "p"});
    redis.run({"SADD", "tx1:awl-domains:{192.0.2.0/24}", "a", "b", "c"});

    auto r = cli.run({"greylist", "stats"});
    INFO(r.out << r.err);
    CHECK(r.code == 0);
    CHECK(contains(r.out, "triplets waiting   3 (1 past the delay"));
    CHECK(contains(r.out, "triplets passed    3\n"));
    CHECK(contains(r.out, "clients counted    2\n"));
    CHECK(contains(r.out, "clients allowed    1 (auto_allow_clients = 2)\n"));
    CHECK(contains(r.out, "  203.0.113.0/24  2 sender domains\n"));

    r = cli.run({"--json", "greylist", "stats"});
    CHECK(json_query(r.out, "d") ==
          R"({"clients": {"auto_allow_clients": 2, "auto_allowed": [{"domains": 2, )"
          R"("identity": "203.0.113.0/24"}], "counted": 2}, "triplets": {"passed": 3, )"
          R"("pending": 3, "pending_past_delay": 1, "unknown": 0}})");

    r = cli.run({"greylist"});
    CHECK(r.code == 2);
    r = cli.run({"greylist", "--help"});
    CHECK(r.code == 0);
    CHECK(contains(r.out, "SCAN"));
}

TEST_CASE("exit codes, usage, Redis down or refusing, the password never shown", "[admin]") {
    RedisServer redis({"s3cret-Pa55", false});
    Cli cli(redis);

    auto r = cli.run({});
    CHECK(r.code == 2);
    CHECK(contains(r.err, "usage: postwarden"));
    r = cli.run({"frobnicate"});
    CHECK(r.code == 2);
    CHECK(contains(r.err, "unknown command 'frobnicate'"));
    CHECK(r.out.empty());
    r = cli.run({"--bogus", "blocked"});
    CHECK(r.code == 2);
    r = cli.run({"unblock"});
    CHECK(r.code == 2);
    CHECK(contains(r.err, "usage: postwarden unblock LOGIN|ADDRESS"));
    r = cli.run({"list", "move", "block:net"});
    CHECK(r.code == 2);
    r = cli.run({"--help"});
    CHECK(r.code == 0);
    CHECK(contains(r.out, "exit status"));
    r = cli.run({"list", "--help"});
    CHECK(r.code == 0);
    CHECK(contains(r.out, "block:sender:RCPTDOMAIN"));
    r = cli.run({"help", "quota"});
    CHECK(r.code == 0);
    CHECK(contains(r.out, "usage: postwarden quota LOGIN"));

    auto bad = run_program({POSTWARDEN_BINARY_DIR "/admin/postwarden", "-c",
                            "/nonexistent/postwarden.conf", "blocked"});
    CHECK(bad.code == 2);
    CHECK(contains(bad.err, "/nonexistent/postwarden.conf"));

    // With the password the CLI works; Redis refusing a command is exit 4.
    r = cli.run({"list", "add", "block:login", "alice"});
    CHECK(r.code == 0);
    redis.run({"SET", "pw:block:net", "not a set"});
    r = cli.run({"list", "show", "block:net"});
    CHECK(r.code == 4);
    CHECK(contains(r.err, "WRONGTYPE"));

    // A wrong password: Redis unreachable for us (3), and the password is printed nowhere.
    Cli wrong("[redis]\naddress = " + redis.endpoint().to_string() +
              "\npassword = wr0ng-Pa55\ntimeout_ms = 100\n");
    r = wrong.run({"--json", "blocked"});
    CHECK(r.code == 3);
    CHECK(json_query(r.out, "d['exit_code']") == "3");
    CHECK(contains(r.err, "authentication failed"));
    CHECK(!contains(r.out + r.err, "wr0ng-Pa55"));
    CHECK(!contains(r.out + r.err, "s3cret-Pa55"));

    // Redis stopped: 3, promptly; bad input is still refused as bad input (2), not 3.
    redis.stop();
    auto start = std::chrono::steady_clock::now();
    r = cli.run({"blocked"});
    CHECK(r.code == 3);
    CHECK(contains(r.err, "unreachable"));
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
    r = cli.run({"list", "add", "block:net", "10.1.2.3/8"});
    CHECK(r.code == 2);
    r = cli.run({"list", "add", "block:net", "10.0.0.0/8"});
    CHECK(r.code == 3);
}

TEST_CASE("json output escapes whatever Redis holds", "[admin]") {
    RedisServer redis;
    Cli cli(redis);
    std::string odd = std::string("q\"uo\\te\x01\n\xff\xc3\xa9") + "@example.com";
    redis.run({"SADD", "pw:block:sender", odd});
    redis.run({"HSET", "pw:block:why", odd, "by hand\t\"why\""});
    auto r = cli.run({"--json", "blocked"});
    CHECK(r.code == 0);
    CHECK(json_query(r.out, "d['blocked'][0]['member']") ==
          R"("q\"uo\\te\u0001\n\u00ff\u00e9@example.com")");
    CHECK(json_query(r.out, "d['blocked'][0]['reason']") == R"("by hand\t\"why\"")");
    r = cli.run({"blocked"});
    CHECK(contains(r.out, "q\"uo\\\\te\\x01\\x0a\xff\xc3\xa9@example.com"));
}
