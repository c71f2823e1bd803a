// redis_load_test.cpp — postwarden-policyd under load from 50 connections (pipelined requests)
// while its Redis is killed and restarted on the same port, frozen with SIGSTOP, kept busy
// (DEBUG SLEEP), or made slower than [redis] timeout_ms by a latency proxy. Each test checks
// every reply of the run: none missing, none a 5xx, each within timeout_ms (plus a margin for a
// shared machine) of the moment the daemon could start on it, those of the fault per the check's
// fail_mode (greylisting open: DUNNO; quota closed: DEFER_IF_PERMIT 4.3.0), normal ones again
// after Redis is back, with the same daemon and the same connections; and, where Redis kept its
// data, that the quota counted every reservation once: the used counters equal the recipients
// that got a DUNNO.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <map>
#include <thread>

#include "tests/fault/load.hpp"
#include "tests/fixtures/dns_server.hpp"
#include "tests/fixtures/latency_proxy.hpp"
#include "tests/fixtures/policyd_process.hpp"
#include "tests/fixtures/redis_server.hpp"

using namespace postwarden;
using namespace postwarden::test;
using namespace std::chrono_literals;

namespace {

constexpr int timeout_ms = 300;
// What a loaded 2-core machine adds to one timeout: scheduling, 50 connections answered in one
// burst when their commands time out together. A request that waited for two timeouts in a
// row, or for the 8 × timeout_ms stall of a connection, would not fit in it.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
// Sanitized, the daemon is several times slower: the bound then only tells one timeout from the
// 8 × timeout_ms stall.
constexpr int margin_ms = 700;
#else
constexpr int margin_ms = 250;
#endif
const std::string unavailable = "DEFER_IF_PERMIT 4.3.0 Policy service unavailable";
const std::string greylisted = "DEFER_IF_PERMIT 4.7.1 Greylisted, please try again in ";

// Senders have no SPF record (answered at once: spf=none), so greylisting uses the network.
const std::string zone = "sender.fault.test A 192.0.2.250\n";

std::string config_for(const Endpoint& redis, DnsServer& dns) {
    return "[redis]\naddress = " + redis.to_string() +
           "\ntimeout_ms = " + std::to_string(timeout_ms) +
           "\n[dns]\nnameservers = " + dns.nameserver() +
           "\ntimeout_ms = 500\n[quota]\nlimits = 100000/3600\nauto_block = 0\n";
}

bool normal(const LoadReply& r) {
    return r.outbound ? r.action == "DUNNO" : r.action.rfind(greylisted, 0) == 0;
}

bool per_fail_mode(const LoadReply& r) {
    return r.outbound ? r.action == unavailable : r.action == "DUNNO";
}

struct Window {
    steady::time_point from, to;  // the fault: Redis could not answer in between
    // Redis answers, late (empty for most faults): one slow step that succeeds and the next that
    // times out make two timeouts then, since each Redis step has its own (README, Operating).
    steady::time_point late_from, late_to;
    steady::time_point back() const { return std::max(to, late_to); }
};

// Everything the issue asks of one run; `fault` is when Redis was unusable.
void check_run(PolicyLoad& load, PolicydProcess& policyd, const Window& fault) {
    const auto& replies = load.replies();
    INFO(replies.size() << " replies; unanswered " << load.unanswered() << "; closed by daemon "
                        << load.closed_by_daemon());
    CHECK(load.unanswered() == 0);
    CHECK(load.closed_by_daemon() == 0);
    CHECK(policyd.process().running());

    long long slowest = 0, slowest_at = 0, late = 0;
    std::string slowest_action;
    std::size_t during = 0, wrong_during = 0, wrong = 0;
    steady::time_point last_fault_answer = fault.from;
    for (const auto& r : replies) {
        bool slow_link = r.started > fault.late_from && r.started < fault.late_to;
        if (r.service_ms() > (slow_link ? 2 : 1) * timeout_ms + margin_ms) ++late;
        if (r.service_ms() > slowest) {
            slowest = r.service_ms();
            slowest_at =
                std::chrono::duration_cast<std::chrono::milliseconds>(r.started - fault.back())
                    .count();
            slowest_action = r.action;
        }
        if (!normal(r) && !per_fail_mode(r)) {
            UNSCOPED_INFO("unexpected reply: " << r.action);
            ++wrong;
        }
        if (!normal(r)) last_fault_answer = std::max(last_fault_answer, r.answered);
        // sent once Redis was unusable and answered before it was back: Redis had no part in it
        if (r.sent >= fault.from && r.answered <= fault.to) {
            ++during;
            if (!per_fail_mode(r)) ++wrong_during;
        }
    }
    auto recovered_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(last_fault_answer - fault.back())
            .count();
    std::size_t after = 0;
    for (const auto& r : replies)
        if (r.sent > last_fault_answer) ++after;
    // Printed on every run (ctest -V): what the fault did, for the record.
    WARN(replies.size() << " replies; " << late << " too slow; slowest " << slowest << " ms ("
                        << slowest_action << ", started " << slowest_at
                        << " ms after Redis was back); " << during
                        << " answered during the fault; normal " << recovered_ms
                        << " ms after Redis was back; " << after << " normal answers after that");
    CHECK(wrong == 0);  // never a 5xx, never anything but the two expected answers
    CHECK(late == 0);   // each answered within timeout_ms (+ margin) of its start
    CHECK(during >= 100);
    CHECK(wrong_during == 0);
    CHECK(recovered_ms < 4000);  // reconnect backoff is at most 2 s
    CHECK(after >= 100);         // and it stayed normal
}

// Recipients counted in the user's window (RCPT reservations and commits alike).
long long used(RedisServer& redis, const std::string& login) {
    auto v = redis.run({"HVALS", "pw:quota:{" + login + "}:used:3600"});
    long long sum = 0;
    for (const auto& e : v.elements)
        sum += std::stoll(e.str);
    return sum;
}

// Ends every message of the run as Postfix would: END-OF-MESSAGE with the recipients it
// accepted (1 when the RCPT got DUNNO, else 0), so reservations of refused recipients are given
// back; then each user's used count must equal its DUNNOs. A reservation counted twice, or one
// that Redis made while policyd answered 4.3.0 and never gave back, breaks the equality.
// late_reservations: the fault must have left some (a busy Redis does; a frozen or slow one
// mostly does not: the quota's first command, the GET of the override, already fails).
void check_counted_once(PolicydProcess& policyd, RedisServer& redis, PolicyLoad& load,
                        bool late_reservations) {
    std::map<std::string, long long> accepted;
    std::vector<std::string> ends;
    for (const auto& r : load.replies()) {
        if (!r.outbound) continue;
        bool ok = r.action == "DUNNO";
        accepted[r.login] += ok ? 1 : 0;
        Attributes a = inbound("198.51.100.7", r.login, "");
        a.erase("recipient");
        a["sasl_username"] = r.login;
        a["instance"] = r.instance;
        a["protocol_state"] = "END-OF-MESSAGE";
        a["recipient_count"] = ok ? "1" : "0";
        ends.push_back(format_request(a));
    }
    long long reserved = 0;  // before the commits: every reservation Redis made
    for (const auto& [login, count] : accepted)
        reserved += used(redis, login);
    PolicyClient client(policyd.port());
    for (std::size_t at = 0; at < ends.size(); at += 100) {
        std::string batch;
        std::size_t n = std::min<std::size_t>(100, ends.size() - at);
        for (std::size_t i = 0; i < n; ++i)
            batch += ends[at + i];
        client.send_raw(batch);
        for (std::size_t i = 0; i < n; ++i)
            REQUIRE(client.read_reply() == "DUNNO");
    }
    long long refused = 0, total = 0;
    for (const auto& [login, count] : accepted) {
        INFO(login);
        CHECK(used(redis, login) == count);
        total += count;
    }
    for (const auto& r : load.replies())
        refused += r.outbound && r.action != "DUNNO";
    WARN(total << " recipients accepted, " << refused << " refused; " << reserved - total
               << " reserved in Redis for a refused one, given back at the commit");
    CHECK(reserved >= total);  // every accepted recipient was reserved first
    CHECK(refused > 0);        // the fault did reach the quota
    CHECK(total > 0);
    // Whether a reservation lands in Redis after policyd gave up on it depends on when each
    // command reaches Redis: on the shared 2-core machines some runs make none (seen 2 runs in
    // 3). The equality above is what must hold; whether this run exercised the late path is
    // reported, not asserted, so the test does not fail by the scheduler's whim.
    if (late_reservations && reserved <= total)
        WARN("no late reservation in this run: the commit's give-back was not exercised");
}

void run_healthy(std::chrono::milliseconds d) {
    std::this_thread::sleep_for(d);
}

}  // namespace

TEST_CASE("Redis killed under load and restarted on the same port", "[fault][redis-kill]") {
    RedisServer redis;
    DnsServer dns(zone);
    PolicydProcess policyd(config_for(redis.endpoint(), dns));
    PolicyLoad load(policyd.port(), {});
    run_healthy(800ms);

    kill(redis.pid(), SIGKILL);
    Window fault{steady::now(), {}, {}, {}};
    redis.stop();  // reaps it
    std::this_thread::sleep_for(1500ms);
    redis.start();  // same port, empty
    fault.to = steady::now();
    std::this_thread::sleep_for(3500ms);
    load.stop();
    check_run(load, policyd, fault);
}

TEST_CASE("Redis frozen (SIGSTOP) under load, then thawed", "[fault][redis-stop]") {
    RedisServer redis;
    DnsServer dns(zone);
    PolicydProcess policyd(config_for(redis.endpoint(), dns));
    PolicyLoad load(policyd.port(), {});
    run_healthy(800ms);

    // Longer than 8 × timeout_ms: the client also gives up on the connection and reconnects
    // to a Redis that still does not answer.
    kill(redis.pid(), SIGSTOP);
    Window fault{steady::now(), {}, {}, {}};
    std::this_thread::sleep_for(2700ms);
    fault.to = steady::now();
    kill(redis.pid(), SIGCONT);
    std::this_thread::sleep_for(3000ms);
    load.stop();
    check_run(load, policyd, fault);
    check_counted_once(policyd, redis, load, false);
}

TEST_CASE("Redis slower than timeout_ms (latency proxy), then busy, under load, then fine",
          "[fault][redis-slow]") {
    RedisServer redis;
    DnsServer dns(zone);
    LatencyProxy proxy(redis.port());
    PolicydProcess policyd(config_for(proxy.endpoint(), dns));
    PolicyLoad load(policyd.port(), {});
    run_healthy(800ms);

    // First Redis itself busy (DEBUG SLEEP, like a slow script or a fork), again and again: the
    // override's GET queued in the last timeout_ms of a sleep is answered when it ends, the
    // reservation script sent then waits behind the next sleep and times out. Redis makes that
    // reservation while policyd answered 4.3.0: the commit must give it back.
    Window fault;
    fault.late_from = steady::now() - std::chrono::milliseconds(timeout_ms);  // those in flight
    for (int i = 0; i < 5; ++i)
        redis.run({"DEBUG", "SLEEP", "0.4"});  // the next is sent before policyd's scripts
    fault.late_to = steady::now();
    // Then the link slower than timeout_ms: nothing is answered in time.
    proxy.set_delay(std::chrono::milliseconds(2 * timeout_ms));
    fault.from = steady::now();
    std::this_thread::sleep_for(2500ms);
    fault.to = steady::now();
    proxy.set_delay(0ms);
    std::this_thread::sleep_for(2500ms);
    load.stop();
    check_run(load, policyd, fault);
    check_counted_once(policyd, redis, load, true);
}

TEST_CASE("the latency proxy delays each chunk and holds traffic while paused", "[fault][proxy]") {
    RedisServer redis;
    LatencyProxy proxy(redis.port());
    auto ping = [&] {
        auto started = steady::now();
        int fd = connect_loopback(proxy.port());
        REQUIRE(fd >= 0);
        REQUIRE(::send(fd, "PING\r\n", 6, MSG_NOSIGNAL) == 6);
        char reply[16] = {};
        auto n = recv(fd, reply, sizeof reply, 0);
        close(fd);
        CHECK(std::string(reply, n > 0 ? static_cast<std::size_t>(n) : 0) == "+PONG\r\n");
        return std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - started);
    };
    CHECK(ping() < 100ms);
    proxy.set_delay(150ms);
    auto slow = ping();
    CHECK(slow >= 300ms);  // both ways
    CHECK(slow < 600ms);
    proxy.set_delay(0ms);
    proxy.pause();
    std::thread resume([&] {
        std::this_thread::sleep_for(400ms);
        proxy.resume();
    });
    CHECK(ping() >= 400ms);
    resume.join();
    CHECK(proxy.accepted() == 3);
}
