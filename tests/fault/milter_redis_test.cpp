// milter_redis_test.cpp — postwarden-milter while its Redis is frozen (SIGSTOP) or killed, with
// several SMTP transactions at once: S8 alias lookups answer 451 4.3.0 and S2 greylisting
// follows [greylist] fail_mode, each within [redis] timeout_ms (plus a margin) of the step that
// needed Redis; never a 5xx, never a crash; and after Redis is back the answers are normal
// again without restarting the milter.
#include <catch2/catch.hpp>

#include <csignal>
#include <future>
#include <thread>

#include "tests/milter/support.hpp"

using namespace postwarden::test;
using namespace std::chrono_literals;

namespace {

constexpr int timeout_ms = 250;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr int margin_ms = 700;  // the transaction's own steps, sanitized, on a loaded machine
#else
constexpr int margin_ms = 250;  // the transaction's own steps and a loaded machine
#endif
constexpr int parallel = 8;

struct World : MilterWorld {
    explicit World(const std::string& extra)
        : MilterWorld("[redis]\ntimeout_ms = " + std::to_string(timeout_ms) + "\n" + extra) {}
};

// An authenticated user sending as an alias: MAIL FROM needs alias:<login> in Redis.
Transaction submission() {
    Transaction t;
    t.client_ip = "198.51.100.44";
    t.login = "alice@rcpt.example";
    t.sender = "shared@rcpt.example";
    t.headers = headers_from("shared@rcpt.example");
    return t;
}

// SPF passes for other.test and nothing is signed: the milter greylists at end of message.
Transaction spf_only() {
    Transaction t;
    t.sender = "x@other.test";
    t.headers = headers_from("x@other.test");
    return t;
}

struct Timed {
    Outcome outcome;
    long long ms = 0;
};

// `parallel` transactions on their own connections, started 30 ms apart; how each ended and how
// long the whole transaction took. Not all in the same instant: libmilter's worker pool (Debian
// builds it with _FFR_WORKERS_POOL, MIN_WORKERS 2) hands sessions that become ready together
// while workers are idle to those idle workers one after another, so a burst of 8 sessions
// blocked on Redis is answered in 4 rounds of timeout_ms; sessions that arrive apart, as
// Postfix' do, get workers of their own.
std::vector<Timed> run_parallel(unsigned short port, const Transaction& t) {
    std::vector<std::future<Timed>> runs;
    for (int i = 0; i < parallel; ++i)
        runs.push_back(std::async(std::launch::async, [port, t, i] {
            std::this_thread::sleep_for(std::chrono::milliseconds(30 * i));
            auto started = std::chrono::steady_clock::now();
            Timed r;
            r.outcome = MilterClient(port).run(t);
            r.ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - started)
                       .count();
            return r;
        }));
    std::vector<Timed> out;
    for (auto& f : runs)
        out.push_back(f.get());
    return out;
}

// How long the same transaction takes with Redis healthy: the part that is not Redis' (DNS, the
// signer's keys, process start-up of nothing) is subtracted from the bound.
long long baseline_ms(unsigned short port, const Transaction& t) {
    long long best = 1 << 30;
    for (int i = 0; i < 3; ++i) {
        auto started = std::chrono::steady_clock::now();
        MilterClient(port).run(t);
        best = std::min<long long>(best, std::chrono::duration_cast<std::chrono::milliseconds>(
                                             std::chrono::steady_clock::now() - started)
                                             .count());
    }
    return best;
}

void check_all(const std::vector<Timed>& runs, char stage, const std::string& text_prefix,
               long long bound_ms) {
    std::string times;
    for (const auto& r : runs)
        times += " " + std::to_string(r.ms);
    WARN("bound " << bound_ms << " ms; transactions took" << times << " ms");
    for (const auto& r : runs) {
        INFO("stage " << r.outcome.stage << " reply " << r.outcome.reply << " '" << r.outcome.text
                      << "' in " << r.ms << " ms");
        CHECK(r.outcome.stage == stage);
        if (text_prefix.empty())
            CHECK(r.outcome.accepted());
        else
            CHECK(r.outcome.text.rfind(text_prefix, 0) == 0);
        CHECK(r.outcome.reply != 'r');  // never a permanent reject
        CHECK(r.ms <= bound_ms);
    }
}

}  // namespace

TEST_CASE("milter, S8: Redis frozen or killed gives 451 4.3.0 in time, then normal again",
          "[fault][milter]") {
    World w("");
    w.redis.run({"SADD", "pw:alias:alice@rcpt.example", "shared@rcpt.example"});
    auto t = submission();
    REQUIRE(MilterClient(w.milter.port()).run(t).accepted());
    auto bound = baseline_ms(w.milter.port(), t) + timeout_ms + margin_ms;

    kill(w.redis.pid(), SIGSTOP);
    auto frozen = run_parallel(w.milter.port(), t);
    kill(w.redis.pid(), SIGCONT);
    check_all(frozen, 'M', "451 4.3.0", bound);
    CHECK(wait_until([&] { return MilterClient(w.milter.port()).run(t).accepted(); }, 5s));

    kill(w.redis.pid(), SIGKILL);
    w.redis.stop();
    auto killed = run_parallel(w.milter.port(), t);
    check_all(killed, 'M', "451 4.3.0", bound);
    w.redis.start();  // empty: the alias must be there again
    w.redis.run({"SADD", "pw:alias:alice@rcpt.example", "shared@rcpt.example"});
    CHECK(wait_until([&] { return MilterClient(w.milter.port()).run(t).accepted(); }, 5s));
    CHECK(w.milter.process().running());
    CHECK(w.milter.log().find("action=reject") == std::string::npos);
}

TEST_CASE("milter, S2: Redis frozen or killed follows the greylist fail_mode, in time",
          "[fault][milter]") {
    World open("[greylist]\ndelay = 60\n");
    World closed("[greylist]\ndelay = 60\nfail_mode = closed\n");
    auto t = spf_only();
    const std::string greylisted = "451 4.7.1 Greylisted";
    REQUIRE(MilterClient(open.milter.port()).run(t).text.rfind(greylisted, 0) == 0);
    REQUIRE(MilterClient(closed.milter.port()).run(t).text.rfind(greylisted, 0) == 0);
    auto bound = baseline_ms(open.milter.port(), t) + timeout_ms + margin_ms;

    for (auto* w : {&open, &closed})
        kill(w->redis.pid(), SIGSTOP);
    auto open_frozen = run_parallel(open.milter.port(), t);
    auto closed_frozen = run_parallel(closed.milter.port(), t);
    for (auto* w : {&open, &closed})
        kill(w->redis.pid(), SIGCONT);
    check_all(open_frozen, 'E', "", bound);
    check_all(closed_frozen, 'E', "451 4.3.0", bound);

    for (auto* w : {&open, &closed}) {
        kill(w->redis.pid(), SIGKILL);
        w->redis.stop();
    }
    check_all(run_parallel(open.milter.port(), t), 'E', "", bound);
    check_all(run_parallel(closed.milter.port(), t), 'E', "451 4.3.0", bound);

    // back, empty: the triplet is new again, so greylisted — by the same milter processes
    for (auto* w : {&open, &closed}) {
        w->redis.start();
        CHECK(wait_until(
            [&] { return MilterClient(w->milter.port()).run(t).text.rfind(greylisted, 0) == 0; },
            5s));
        CHECK(w->milter.process().running());
    }
}
