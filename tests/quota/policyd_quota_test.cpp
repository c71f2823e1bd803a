// policyd_quota_test.cpp — sending quotas as Postfix meets them: real postwarden-policyd processes
// from the build tree, a real redis-server, requests over TCP on 127.0.0.1. The boundary, several
// windows, the per-user override, the penalty and its honest time, exactness with many parallel
// connections to two daemons, auto_block, reservations committed at END-OF-MESSAGE or released
// after reserve_ttl, and Redis going away. Windows are seconds long, so real time is used.
#include <catch2/catch.hpp>

#include <atomic>
#include <ctime>
#include <thread>

#include "common/redis/scripts.hpp"
#include "policyd/quota.hpp"
#include "tests/fixtures/policyd_process.hpp"
#include "tests/fixtures/redis_server.hpp"

using namespace postwarden::test;
using namespace std::chrono_literals;

namespace {

const std::string throttled_prefix = "DEFER 4.7.1 Sending rate limit exceeded, try again after ";
const std::string blocked_login = "REJECT 5.7.1 Sender address rejected: Access denied";
const std::string unavailable = "DEFER_IF_PERMIT 4.3.0 Policy service unavailable";

// Our Redis, no greylisting or DNS needed (outbound mail), and the test's [quota] section.
std::string config_for(RedisServer& redis, const std::string& quota) {
    return "[redis]\naddress = " + redis.endpoint().to_string() +
           "\ntimeout_ms = 200\n[dns]\nnameservers = 127.0.0.1:" + std::to_string(free_port()) +
           "\ntimeout_ms = 200\n[quota]\n" + quota;
}

// One RCPT of a message (instance) from a SASL user.
Attributes rcpt(const std::string& login, const std::string& instance, const std::string& to) {
    auto a = inbound("198.51.100.7", login, to);
    a["sasl_username"] = login;
    a["instance"] = instance;
    return a;
}

Attributes end_of_message(const std::string& login, const std::string& instance, int count) {
    auto a = rcpt(login, instance, "");
    a.erase("recipient");
    a["protocol_state"] = "END-OF-MESSAGE";
    a["recipient_count"] = std::to_string(count);
    return a;
}

std::string to(int i) {
    return "r" + std::to_string(i) + "@elsewhere.example";
}

// The announced time of a throttled reply, as a system_clock time point.
std::chrono::system_clock::time_point announced(const std::string& reply) {
    REQUIRE(reply.rfind(throttled_prefix, 0) == 0);
    std::tm tm{};
    REQUIRE(strptime(reply.c_str() + throttled_prefix.size(), "%Y-%m-%dT%H:%M:%SZ", &tm));
    return std::chrono::system_clock::from_time_t(timegm(&tm));
}

void sleep_until(std::chrono::system_clock::time_point t) {
    std::this_thread::sleep_until(t);
}

bool logged(PolicydProcess& p, const std::string& text) {
    return p.log().find(text) != std::string::npos;
}

// Recipients counted for login in the window of that many seconds.
long long used(RedisServer& redis, const std::string& login, long seconds) {
    auto v = redis.run({"HVALS", "pw:quota:{" + login + "}:used:" + std::to_string(seconds)});
    long long sum = 0;
    for (const auto& e : v.elements)
        sum += std::stoll(e.str);
    return sum;
}

// How many times Redis ran a command (INFO commandstats; 0 before the first).
int calls(RedisServer& redis, const std::string& command) {
    auto field = redis.info_field("commandstats", "cmdstat_" + command);
    return field.empty() ? 0 : std::stoi(field.substr(6));
}

}  // namespace

TEST_CASE("quota: the boundary, several windows, replays, per-user override",
          "[quota][policyd][cluster]") {
    RedisServer redis;
    PolicydProcess policyd(config_for(redis, "limits = 3/2, 5/60\nauto_block = 0\n"));
    PolicyClient client(policyd.port());
    const std::string alice = "alice@example.com";

    for (int i = 1; i <= 3; ++i)
        CHECK(client.ask(rcpt(alice, "m1", to(i))) == "DUNNO");
    CHECK(client.ask(rcpt(alice, "m1", to(3))) == "DUNNO");  // a replay is not counted again
    auto refused = client.ask(rcpt(alice, "m1", to(4)));
    CHECK(client.ask(rcpt(alice, "m1", to(4))) == refused);  // nor is a refused one
    CHECK(used(redis, alice, 60) == 3);
    CHECK(logged(policyd,
                 "reason=quota-throttled client=mail.example.org[198.51.100.7] "
                 "helo=<mail.example.org> sasl_username=alice@example.com "
                 "sender=<alice@example.com> rcpt=<r4@elsewhere.example> "
                 "window=3/2 used=3 until="));

    // the time is honest: at the announced second the short window has room again
    sleep_until(announced(refused));
    CHECK(client.ask(rcpt(alice, "m2", to(4))) == "DUNNO");
    CHECK(client.ask(rcpt(alice, "m2", to(5))) == "DUNNO");
    auto long_refused = client.ask(rcpt(alice, "m2", to(6)));
    CHECK(announced(long_refused) > std::chrono::system_clock::now() + 55s);
    CHECK(logged(policyd, "rcpt=<r6@elsewhere.example> window=5/60 used=5 until="));
    CHECK(logged(policyd, "reason=quota-ok"));

    // the override takes effect on the next request
    redis.run({"SET", "pw:quota:limits:bob@example.com", "1/60"});
    CHECK(client.ask(rcpt("bob@example.com", "b1", to(1))) == "DUNNO");
    CHECK(client.ask(rcpt("bob@example.com", "b1", to(2))).rfind(throttled_prefix, 0) == 0);
    CHECK(logged(policyd, "window=1/60 used=1"));
    // an invalid override is reported and the default applies
    redis.run({"SET", "pw:quota:limits:carol@example.com", "lots"});
    for (int i = 1; i <= 3; ++i)
        CHECK(client.ask(rcpt("carol@example.com", "c1", to(i))) == "DUNNO");
    CHECK(client.ask(rcpt("carol@example.com", "c1", to(4))).rfind(throttled_prefix, 0) == 0);
    CHECK(logged(policyd, "pw:quota:limits:carol@example.com: 'lots': expected COUNT/SECONDS"));

    // a trusted-network client without login is outbound but not counted
    auto trusted = inbound("127.0.0.1", "app@example.com", "x@elsewhere.example");
    CHECK(client.ask(trusted) == "DUNNO");
    CHECK(logged(policyd, "reason=outbound client=mail.example.org[127.0.0.1]"));

    // every quota key expires (the override is the operator's)
    auto keys = redis.run({"KEYS", "pw:quota:{*"});
    REQUIRE(keys.elements.size() >= 6);
    for (const auto& k : keys.elements) {
        INFO(k.str);
        CHECK(redis.run({"PTTL", k.str}).integer > 0);
    }
}

// A reservation with room is one MULTI ... EXEC and no script (policyd/quota.hpp,
// reserve_transaction); the script decides the rest, here a refusal.
TEST_CASE("quota: a reservation with room is one transaction, the script decides the rest",
          "[quota][policyd]") {
    RedisServer redis;
    PolicydProcess policyd(config_for(redis, "limits = 3/60\nauto_block = 0\n"));
    PolicyClient client(policyd.port());
    for (int i = 1; i <= 3; ++i)
        CHECK(client.ask(rcpt("jo@example.com", "m1", to(i))) == "DUNNO");
    CHECK(calls(redis, "exec") == 3);
    CHECK(calls(redis, "evalsha") + calls(redis, "eval") == 0);
    CHECK(logged(policyd, "reason=quota-ok"));
    CHECK(logged(policyd, "window=3/60 used=3"));

    CHECK(client.ask(rcpt("jo@example.com", "m1", to(4))).rfind(throttled_prefix, 0) == 0);
    CHECK(calls(redis, "exec") == 4);
    CHECK(calls(redis, "evalsha") + calls(redis, "eval") > 0);
    CHECK(used(redis, "jo@example.com", 60) == 3);
}

// A window's TTL is set once per bucket (QuotaMemo), held's with every reservation, and held is
// asked for reservations due for release once a second; a window key deleted meanwhile comes
// back with its TTL all the same (SPEC §3: every key expires).
TEST_CASE("quota: a window's TTL is set once per bucket, and a key deleted meanwhile gets one",
          "[quota][policyd]") {
    RedisServer redis;
    PolicydProcess policyd(config_for(redis, "limits = 1000/3600\nauto_block = 0\n"));
    PolicyClient client(policyd.port());
    const std::string key = "pw:quota:{kim@example.com}:used:3600";
    for (int i = 1; i <= 6; ++i)
        REQUIRE(client.ask(rcpt("kim@example.com", "k1", to(i))) == "DUNNO");
    CHECK(calls(redis, "exec") == 6);
    // held's six, and the window's once per 60 s bucket: once, or twice if one ended meanwhile
    CHECK(calls(redis, "pexpire") >= 7);
    CHECK(calls(redis, "pexpire") <= 8);
    // held is asked for reservations due for release once a second (twice if one ended)
    CHECK(calls(redis, "zcount") >= 1);
    CHECK(calls(redis, "zcount") <= 2);
    CHECK(redis.run({"PTTL", key}).integer > 3600000);

    redis.run({"DEL", key});
    REQUIRE(client.ask(rcpt("kim@example.com", "k1", to(7))) == "DUNNO");
    CHECK(used(redis, "kim@example.com", 3600) == 1);
    // the PEXPIRE follows the transaction's answer on the same connection
    CHECK(wait_until([&] { return redis.run({"PTTL", key}).integer > 3600000; }, 5s));
    CHECK(redis.run({"PTTL", key}).integer <= 3660000);
}

// The override is cached like the lists (list_cache.hpp): no GET per request, and an edit still
// counts on the next request.
TEST_CASE("quota: the override is read from memory, and every edit counts on the next request",
          "[quota][policyd][cache][cluster]") {
    RedisServer redis;
    PolicydProcess policyd(config_for(redis, "limits = 5/60\nauto_block = 0\n"));
    PolicyClient client(policyd.port());
    REQUIRE(
        wait_until([&] { return policyd.log().find("list cache on") != std::string::npos; }, 5s));
    const std::string dave = "dave@example.com";
    redis.run({"SET", "pw:quota:limits:" + dave, "1/60"});
    CHECK(client.ask(rcpt(dave, "d1", to(1))) == "DUNNO");  // loads the override
    auto gets = calls(redis, "get");
    REQUIRE(gets > 0);
    CHECK(client.ask(rcpt(dave, "d1", to(2))).rfind(throttled_prefix, 0) == 0);  // 1/60 holds
    CHECK(calls(redis, "get") == gets);                                          // from memory

    // no limit for dave ("0"; the throttle already announced is ended by hand): not counted
    redis.run({"SET", "pw:quota:limits:" + dave, "0"});
    redis.run({"DEL", "pw:quota:{" + dave + "}:throttle"});
    CHECK(client.ask(rcpt(dave, "d2", to(3))) == "DUNNO");
    CHECK(used(redis, dave, 60) == 1);
    // deleted: [quota] limits apply again, 5/60 with 1 counted
    redis.run({"DEL", "pw:quota:limits:" + dave});
    for (int i = 4; i <= 7; ++i)
        CHECK(client.ask(rcpt(dave, "d3", to(i))) == "DUNNO");
    CHECK(client.ask(rcpt(dave, "d3", to(8))).rfind(throttled_prefix, 0) == 0);
    CHECK(used(redis, dave, 60) == 5);
}

TEST_CASE("quota: retrying while throttled moves the time later, never beyond penalty_max",
          "[quota][policyd][penalty]") {
    RedisServer redis;
    PolicydProcess policyd(config_for(redis, "limits = 2/3\npenalty_max = 4\nauto_block = 0\n"));
    PolicyClient client(policyd.port());
    const std::string dave = "dave@example.com";
    CHECK(client.ask(rcpt(dave, "m1", to(1))) == "DUNNO");
    CHECK(client.ask(rcpt(dave, "m1", to(2))) == "DUNNO");
    auto first = announced(client.ask(rcpt(dave, "m1", to(3))));
    // more recipients of the same message are not retries
    CHECK(announced(client.ask(rcpt(dave, "m1", to(4)))) == first);

    auto previous = first;
    for (int i = 0; i < 3; ++i) {
        std::this_thread::sleep_for(300ms);
        auto now = std::chrono::system_clock::now();
        auto t = announced(client.ask(rcpt(dave, "retry" + std::to_string(i), to(3))));
        CHECK(t >= previous);
        CHECK(t <= now + 5200ms);  // penalty_max (4 s) from the attempt, rounded up to a second
        previous = t;
    }
    CHECK(previous > first);
    CHECK(logged(policyd, "penalty=yes"));

    // a client that waits until the announced time gets through
    sleep_until(previous);
    CHECK(client.ask(rcpt(dave, "later", to(3))) == "DUNNO");
}

namespace {

// `connections` threads per daemon, each sending `per_connection` recipients of distinct
// messages for the same login, all at once; returns how many were accepted.
int flood(const std::vector<PolicydProcess*>& daemons, int connections, int per_connection,
          const std::string& login) {
    std::atomic<int> accepted{0}, other{0};
    std::vector<std::thread> threads;
    for (std::size_t d = 0; d < daemons.size(); ++d) {
        for (int c = 0; c < connections; ++c) {
            threads.emplace_back([&, d, c] {
                PolicyClient client(daemons[d]->port());
                for (int i = 0; i < per_connection; ++i) {
                    auto id = std::to_string(d) + "." + std::to_string(c) + "." + std::to_string(i);
                    auto reply = client.ask(rcpt(login, "m" + id, "r" + id + "@x.example"));
                    if (reply == "DUNNO")
                        ++accepted;
                    else if (reply.rfind(throttled_prefix, 0) != 0)
                        ++other;
                }
            });
        }
    }
    for (auto& t : threads)
        t.join();
    CHECK(other == 0);
    return accepted;
}

}  // namespace

TEST_CASE("quota: exact under concurrency, one daemon or two sharing Redis",
          "[quota][policyd][concurrency][cluster]") {
    RedisServer redis;
    auto config = config_for(redis, "limits = 50/60, 70/3600\nauto_block = 0\n");
    PolicydProcess first(config), second(config);

    CHECK(flood({&first}, 16, 10, "solo@example.com") == 50);
    CHECK(used(redis, "solo@example.com", 60) == 50);

    CHECK(flood({&first, &second}, 12, 10, "pair@example.com") == 50);
    CHECK(used(redis, "pair@example.com", 60) == 50);
    CHECK(used(redis, "pair@example.com", 3600) == 50);
}

TEST_CASE("quota: auto_block counts throttled attempts, blocks with a reason, SREM restores",
          "[quota][policyd][auto-block][cluster]") {
    RedisServer redis;
    PolicydProcess policyd(config_for(redis, "limits = 2/60\nauto_block = 4/60\n"));
    PolicyClient client(policyd.port());
    const std::string erin = "erin@example.com";

    CHECK(client.ask(rcpt(erin, "m1", to(1))) == "DUNNO");
    CHECK(client.ask(rcpt(erin, "m1", to(2))) == "DUNNO");
    CHECK(client.ask(rcpt(erin, "m1", to(3))).rfind(throttled_prefix, 0) == 0);
    CHECK(client.ask(rcpt(erin, "m2", to(3))).rfind(throttled_prefix, 0) == 0);
    CHECK(client.ask(rcpt(erin, "m3", to(3))) == blocked_login);
    CHECK(redis.run({"SISMEMBER", "pw:block:login", erin}).integer == 1);
    auto why = redis.run({"HGET", "pw:block:why", erin}).str;
    CHECK(why.rfind("auto_block 4/60: 5 recipients attempted at 20", 0) == 0);
    CHECK(logged(policyd, "action=REJECT reason=quota-blocked"));
    CHECK(logged(policyd, "auto_block=4/60 attempted=5"));
    // from now on the list says no, before the quota is asked
    CHECK(client.ask(rcpt(erin, "m4", to(1))) == blocked_login);
    CHECK(logged(policyd, "reason=block-login"));

    // a user whose limit is far away, blocked by attempts alone, and unblocked by an operator
    const std::string frank = "frank@example.com";
    redis.run({"SET", "pw:quota:limits:" + frank, "100/60"});
    for (int i = 1; i <= 4; ++i)
        CHECK(client.ask(rcpt(frank, "f1", to(i))) == "DUNNO");
    CHECK(client.ask(rcpt(frank, "f1", to(5))) == blocked_login);
    redis.run({"SREM", "pw:block:login", frank});
    redis.run({"HDEL", "pw:block:why", frank});
    CHECK(client.ask(rcpt(frank, "f2", to(6))) == "DUNNO");
}

TEST_CASE(
    "quota: committed at END-OF-MESSAGE, given back past recipient_count or after "
    "reserve_ttl",
    "[quota][policyd][reserve]") {
    RedisServer redis;
    PolicydProcess policyd(config_for(redis, "limits = 7/60\nreserve_ttl = 10\nauto_block = 0\n"));
    PolicyClient client(policyd.port());
    const std::string gina = "gina@example.com";

    // the client went away after RCPT: never committed
    CHECK(client.ask(rcpt(gina, "aborted", to(1))) == "DUNNO");
    CHECK(client.ask(rcpt(gina, "aborted", to(2))) == "DUNNO");
    auto aborted_at = std::chrono::steady_clock::now();
    // a message that completes is charged its recipients; END-OF-MESSAGE is answered DUNNO
    for (int i = 3; i <= 5; ++i)
        CHECK(client.ask(rcpt(gina, "done", to(i))) == "DUNNO");
    CHECK(client.ask(end_of_message(gina, "done", 3)) == "DUNNO");
    CHECK(logged(policyd, "reason=quota-commit"));
    CHECK(logged(policyd, "committed=3 released=0"));
    CHECK(client.ask(end_of_message(gina, "done", 3)) == "DUNNO");  // a replay commits nothing
    CHECK(logged(policyd, "committed=0 released=0"));
    // a later restriction refused one of two recipients: Postfix accepted one
    CHECK(client.ask(rcpt(gina, "partly", to(6))) == "DUNNO");
    CHECK(client.ask(rcpt(gina, "partly", to(7))) == "DUNNO");
    CHECK(client.ask(end_of_message(gina, "partly", 1)) == "DUNNO");
    CHECK(logged(policyd, "committed=1 released=1"));
    CHECK(used(redis, gina, 60) == 6);  // 3 + 1 committed, 2 still reserved

    // after reserve_ttl the aborted message's two come back: exactly three more fit
    std::this_thread::sleep_until(aborted_at + 10500ms);
    for (int i = 8; i <= 10; ++i)
        CHECK(client.ask(rcpt(gina, "after", to(i))) == "DUNNO");
    CHECK(client.ask(rcpt(gina, "after", to(11))).rfind(throttled_prefix, 0) == 0);
    CHECK(logged(policyd, "window=7/60 used=5"));
}

// The usual commit takes the reservations this daemon made in one MULTI ... EXEC, no script
// (policyd/quota.hpp, commit_transaction). A message whose recipients were reserved partly by
// another daemon sharing Redis is committed whole all the same: the transaction sees what it left
// in held, and the script commits or gives back the rest.
TEST_CASE("quota: the usual commit is one transaction, another daemon's reservations count too",
          "[quota][policyd][reserve][cluster]") {
    RedisServer redis;
    auto config = config_for(redis, "limits = 10/60\nauto_block = 0\n");
    PolicydProcess first(config), second(config);
    PolicyClient one(first.port()), two(second.port());
    const std::string hal = "hal@example.com";
    const std::string held = "pw:quota:{hal@example.com}:held";
    auto scripts = [&] { return calls(redis, "evalsha") + calls(redis, "eval"); };

    CHECK(one.ask(rcpt(hal, "m1", to(1))) == "DUNNO");
    CHECK(one.ask(rcpt(hal, "m1", to(2))) == "DUNNO");
    CHECK(one.ask(end_of_message(hal, "m1", 2)) == "DUNNO");
    CHECK(logged(first, "committed=2 released=0"));
    CHECK(calls(redis, "exec") == 3);
    CHECK(scripts() == 0);
    CHECK(redis.run({"ZCARD", held}).integer == 0);

    // one recipient reserved by each daemon, the message ends at the first
    CHECK(two.ask(rcpt(hal, "m2", to(3))) == "DUNNO");
    CHECK(one.ask(rcpt(hal, "m2", to(4))) == "DUNNO");
    CHECK(one.ask(end_of_message(hal, "m2", 2)) == "DUNNO");
    CHECK(scripts() > 0);
    CHECK(redis.run({"ZCARD", held}).integer == 0);
    CHECK(used(redis, hal, 60) == 4);

    // likewise, and a later restriction refused one of them: one is given back
    CHECK(two.ask(rcpt(hal, "m3", to(5))) == "DUNNO");
    CHECK(one.ask(rcpt(hal, "m3", to(6))) == "DUNNO");
    CHECK(one.ask(end_of_message(hal, "m3", 1)) == "DUNNO");
    CHECK(logged(first, "committed=1 released=1"));
    CHECK(redis.run({"ZCARD", held}).integer == 0);
    CHECK(used(redis, hal, 60) == 5);

    // a message the first daemon knows nothing of: the script commits it
    CHECK(two.ask(rcpt(hal, "m4", to(7))) == "DUNNO");
    CHECK(one.ask(end_of_message(hal, "m4", 1)) == "DUNNO");
    CHECK(logged(first, "committed=1 released=0"));
    CHECK(redis.run({"ZCARD", held}).integer == 0);
    CHECK(used(redis, hal, 60) == 6);
    // m2's log line: the transaction's one and the script's one, together
    auto log = first.log();
    auto m2 = log.find("committed=2 released=0", log.find("committed=2 released=0") + 1);
    CHECK(m2 != std::string::npos);
}

// A session kept open past reserve_ttl (NOOPs, a slow DATA) has its reservations given back, as
// an abandoned message's are. When its END-OF-MESSAGE comes after all, the mail leaves: it is
// charged then, through every path (the script, and the commit transaction whose reservations
// another policyd gave back), once however often Postfix repeats the request, and even when that
// puts the user past the limit.
TEST_CASE("quota: a message that ends after reserve_ttl is charged when it ends, once",
          "[quota][policyd][reserve]") {
    RedisServer redis;
    const std::string quota = "limits = 5/60, 50/3600\nreserve_ttl = 10\nauto_block = 0\n";
    PolicydProcess policyd(config_for(redis, quota));
    PolicyClient client(policyd.port());
    const std::string ivan = "ivan@example.com", judy = "judy@example.com", kim = "kim@example.com";

    for (int i = 1; i <= 3; ++i)
        CHECK(client.ask(rcpt(ivan, "slow", to(i))) == "DUNNO");
    for (int i = 1; i <= 2; ++i)
        CHECK(client.ask(rcpt(judy, "slow", to(i))) == "DUNNO");
    auto reserved_at = std::chrono::steady_clock::now();
    CHECK(used(redis, ivan, 60) == 3);

    // another policyd, its clock 20 s ahead, serves kim's next message and gives the first one's
    // back; this policyd still takes them for its own when the first message ends
    for (int i = 1; i <= 4; ++i)
        CHECK(client.ask(rcpt(kim, "first", to(i))) == "DUNNO");
    std::string error;
    auto config = postwarden::parse_config("[quota]\n" + quota, "test", &error);
    REQUIRE(config);
    postwarden::policy::Facts other;
    other.state = "RCPT";
    other.login = kim;
    other.instance = "second";
    other.recipient = to(5);
    auto ahead = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count() +
                 20000;
    auto call = reserve_call(other, postwarden::policy::merge_windows(config->quota.limits), ahead,
                             *config);
    std::vector<std::string> eval{"EVAL", std::string(postwarden::script_text("quota")),
                                  std::to_string(call.keys.size())};
    eval.insert(eval.end(), call.keys.begin(), call.keys.end());
    eval.insert(eval.end(), call.args.begin(), call.args.end());
    CHECK(redis.run(eval).elements.at(0).str == "reserved");
    CHECK(used(redis, kim, 60) == 1);
    CHECK(client.ask(end_of_message(kim, "first", 4)) == "DUNNO");
    CHECK(logged(policyd, "committed=4 released=0 late=4"));
    CHECK(used(redis, kim, 60) == 5);

    std::this_thread::sleep_until(reserved_at + 10500ms);
    // ivan's three are given back, and another message takes the room
    for (int i = 4; i <= 8; ++i)
        CHECK(client.ask(rcpt(ivan, "fast", to(i))) == "DUNNO");
    CHECK(used(redis, ivan, 60) == 5);
    CHECK(client.ask(end_of_message(ivan, "slow", 3)) == "DUNNO");
    CHECK(logged(policyd, "committed=3 released=0 late=3"));
    CHECK(used(redis, ivan, 60) == 8);
    CHECK(used(redis, ivan, 3600) == 8);
    // past the limit now: the next recipient waits
    CHECK(client.ask(rcpt(ivan, "next", to(9))).rfind(throttled_prefix, 0) == 0);
    // a replayed END-OF-MESSAGE charges nothing more
    CHECK(client.ask(end_of_message(ivan, "slow", 3)) == "DUNNO");
    CHECK(logged(policyd, "committed=0 released=0"));
    CHECK(client.ask(end_of_message(ivan, "fast", 5)) == "DUNNO");
    CHECK(logged(policyd, "committed=5 released=0"));
    CHECK(used(redis, ivan, 60) == 8);

    // judy sent nothing meanwhile: her END-OF-MESSAGE gives them back and charges them itself
    CHECK(client.ask(end_of_message(judy, "slow", 2)) == "DUNNO");
    CHECK(logged(policyd, "committed=2 released=0 late=2"));
    CHECK(used(redis, judy, 60) == 2);
    CHECK(client.ask(end_of_message(judy, "slow", 2)) == "DUNNO");
    CHECK(used(redis, judy, 60) == 2);
}

TEST_CASE("quota: Redis down answers per the quota fail_mode in time, nothing double-counted",
          "[quota][policyd][redis-down]") {
    RedisServer redis;
    PolicydProcess closed(config_for(redis, "limits = 5/60\nauto_block = 0\n"));
    PolicydProcess open(config_for(redis, "limits = 5/60\nauto_block = 0\nfail_mode = open\n"));
    PolicyClient client(closed.port()), open_client(open.port());
    const std::string hank = "hank@example.com";

    CHECK(client.ask(rcpt(hank, "m1", to(1))) == "DUNNO");
    CHECK(client.ask(rcpt(hank, "m1", to(2))) == "DUNNO");

    // alive but silent: the request is answered per fail_mode within the timeout
    kill(redis.pid(), SIGSTOP);
    auto started = std::chrono::steady_clock::now();
    auto reply = client.ask(rcpt(hank, "m1", to(3)));
    auto open_reply = open_client.ask(rcpt(hank, "o1", to(1)));
    auto took = std::chrono::steady_clock::now() - started;
    kill(redis.pid(), SIGCONT);
    CHECK(reply == unavailable);
    CHECK(open_reply == "DUNNO");
    CHECK(took < 1500ms);  // timeout_ms = 200 per step, two daemons
    CHECK(logged(closed, "reason=quota-unavailable"));

    // Postfix' client retries the deferred recipient in the same transaction: counted once
    CHECK(wait_until([&] { return client.ask(rcpt(hank, "m1", to(3))) == "DUNNO"; }, 10s));
    CHECK(client.ask(end_of_message(hank, "m1", 3)) == "DUNNO");
    CHECK(logged(closed, "committed=3 released=0"));
    CHECK(used(redis, hank, 60) == 3);
    CHECK(client.ask(rcpt(hank, "m2", to(4))) == "DUNNO");
    CHECK(client.ask(rcpt(hank, "m2", to(5))) == "DUNNO");
    CHECK(client.ask(rcpt(hank, "m2", to(6))).rfind(throttled_prefix, 0) == 0);

    // gone: answered at once; END-OF-MESSAGE is DUNNO whatever happens
    redis.stop();
    started = std::chrono::steady_clock::now();
    CHECK(client.ask(rcpt("ivy@example.com", "i1", to(1))) == unavailable);
    CHECK(open_client.ask(rcpt("ivy@example.com", "i1", to(1))) == "DUNNO");
    CHECK(client.ask(end_of_message("ivy@example.com", "i1", 1)) == "DUNNO");
    CHECK(std::chrono::steady_clock::now() - started < 1500ms);
    redis.start();
    CHECK(wait_until([&] { return client.ask(rcpt("ivy@example.com", "i2", to(1))) == "DUNNO"; },
                     10s));
}
