// signals_test.cpp — postwarden-milter's signals: SIGHUP, like SIGUSR1, reloads the
// configuration (a bad file is refused and the running one stays; a connection keeps the snapshot
// it started with; a burst of them neither stops the milter nor loses a message); SIGTERM finishes
// the message in progress, answers new connections and messages 451 4.3.2, and exits 0.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "tests/milter/support.hpp"

using namespace postwarden::test;
using namespace std::chrono_literals;

namespace {

struct World : MilterWorld {
    World() : MilterWorld("[greylist]\nenabled = no\n") {}

    std::string read_config() {
        std::ifstream in(milter.config_path());
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
    }
    void write_config(const std::string& text) { std::ofstream(milter.config_path()) << text; }
    // Signals and waits for the n-th occurrence of `line` in the log.
    bool signal_and_wait(int sig, const std::string& line, int n) {
        kill(milter.process().pid(), sig);
        return wait_until([&] { return count(line) >= n; }, 5s);
    }
    int count(const std::string& text) {
        auto log = milter.log();
        int n = 0;
        for (auto at = log.find(text); at != std::string::npos; at = log.find(text, at + 1))
            ++n;
        return n;
    }
};

Transaction mail() {
    Transaction t;
    t.sender = "news@sender.test";
    t.headers = headers_from("News <news@sender.test>");
    return t;
}

std::string authserv_id(const Outcome& out) {
    auto ar = out.added("Authentication-Results");
    ar = ar.substr(0, ar.find(';'));
    return ar.substr(ar.find_first_not_of(' ') == std::string::npos ? ar.size()
                                                                    : ar.find_first_not_of(' '));
}

}  // namespace

TEST_CASE("SIGUSR1 reloads, and a bad file keeps the running configuration", "[milter][signals]") {
    World w;
    REQUIRE(authserv_id(w.run(mail())) == "mx.rcpt.example");
    const auto good = w.read_config();

    w.write_config(good + "[greylist]\ndelay = banana\n");
    REQUIRE(w.signal_and_wait(SIGUSR1, "reload failed", 1));
    INFO(w.milter.log());
    CHECK(w.milter.log().find("[greylist] delay") != std::string::npos);
    CHECK(w.milter.process().running());
    CHECK(authserv_id(w.run(mail())) == "mx.rcpt.example");

    // A connection open across the reload keeps its snapshot; the next one has the new one.
    std::string replaced = good;
    replaced.replace(replaced.find("mx.rcpt.example"), 15, "mx2.rcpt.example");
    Transaction open_across = mail();
    open_across.before = [&](char command) {
        if (command != 'M') return;
        w.write_config(replaced);
        REQUIRE(w.signal_and_wait(SIGUSR1, "configuration reloaded", 1));
        CHECK(authserv_id(w.run(mail())) == "mx2.rcpt.example");
    };
    CHECK(authserv_id(w.run(open_across)) == "mx.rcpt.example");
    CHECK(authserv_id(w.run(mail())) == "mx2.rcpt.example");

    // Settings read only at start are named, not silently ignored.
    replaced.replace(replaced.find("timeout_ms = 400"), 16, "timeout_ms = 900");
    w.write_config(replaced);
    REQUIRE(w.signal_and_wait(SIGUSR1, "configuration reloaded", 2));
    CHECK(w.milter.log().find("only at the next restart: [dns] timeout_ms") != std::string::npos);
}

TEST_CASE("SIGHUP reloads without stopping, a bad file keeps the running configuration",
          "[milter][signals]") {
    World w;
    REQUIRE(authserv_id(w.run(mail())) == "mx.rcpt.example");
    const auto good = w.read_config();

    w.write_config(good + "[greylist]\ndelay = banana\n");
    REQUIRE(w.signal_and_wait(SIGHUP, "reload failed", 1));
    CHECK(w.milter.process().running());
    CHECK(authserv_id(w.run(mail())) == "mx.rcpt.example");

    std::string replaced = good;
    replaced.replace(replaced.find("mx.rcpt.example"), 15, "mx2.rcpt.example");
    Transaction open_across = mail();
    open_across.before = [&](char command) {
        if (command != 'M') return;
        w.write_config(replaced);
        REQUIRE(w.signal_and_wait(SIGHUP, "configuration reloaded", 1));
        CHECK(authserv_id(w.run(mail())) == "mx2.rcpt.example");
    };
    CHECK(authserv_id(w.run(open_across)) == "mx.rcpt.example");
    CHECK(authserv_id(w.run(mail())) == "mx2.rcpt.example");

    // A burst, some arriving while a reload is under way: each reloads, none stops the milter.
    for (int i = 0; i < 50; ++i)
        kill(w.milter.process().pid(), SIGHUP);
    CHECK(wait_until([&] { return w.count("configuration reloaded") >= 2; }, 5s));
    std::this_thread::sleep_for(300ms);
    CHECK(w.milter.process().running());
    CHECK(w.milter.log().find("stopping") == std::string::npos);
    CHECK(authserv_id(w.run(mail())) == "mx2.rcpt.example");
}

TEST_CASE("SIGTERM finishes the message in progress, defers new ones, exits 0",
          "[milter][signals]") {
    World w;
    auto& process = w.milter.process();
    Outcome late;
    Transaction in_progress = mail();
    in_progress.before = [&](char command) {
        if (command != 'R') return;  // MAIL FROM accepted: the message is in progress
        // A second connection, set up before the signal, starts its message after it.
        Transaction second = mail();
        second.before = [&](char c) {
            if (c != 'M') return;
            REQUIRE(w.signal_and_wait(SIGTERM, "stopping: finishing 1 message(s)", 1));
            // A new connection meanwhile is told to come back.
            auto fresh = w.run(mail());
            CHECK(fresh.stage == 'C');
            CHECK(fresh.text.rfind("451 4.3.2 ", 0) == 0);
        };
        late = w.run(second);
    };
    auto out = w.run(in_progress);
    INFO(w.milter.log());
    CHECK(late.stage == 'M');
    CHECK(late.reply == 'y');
    CHECK(late.text.rfind("451 4.3.2 ", 0) == 0);
    // The message in progress was decided as usual, with its Authentication-Results.
    CHECK(out.stage == 'E');
    CHECK(out.accepted());
    CHECK(authserv_id(out) == "mx.rcpt.example");
    // Its connection closed (MilterClient is gone): nothing is left in progress, it exits.
    REQUIRE(wait_until([&] { return !process.running(); }, 10s));
    CHECK(WIFEXITED(process.status()));
    CHECK(WEXITSTATUS(process.status()) == 0);
    CHECK(w.milter.log().find("stopped") != std::string::npos);
}

TEST_CASE("SIGTERM with nothing in progress exits 0 without waiting for idle connections",
          "[milter][signals]") {
    World w;
    auto& process = w.milter.process();
    // An idle connection (negotiated, between messages) does not hold the stop up.
    Transaction idle = mail();
    bool checked = false;
    idle.before = [&](char command) {
        if (command != 'M') return;
        const auto start = std::chrono::steady_clock::now();
        kill(process.pid(), SIGTERM);
        REQUIRE(wait_until([&] { return !process.running(); }, 10s));
        CHECK(std::chrono::steady_clock::now() - start < 2s);
        checked = true;
    };
    w.run(idle);
    REQUIRE(checked);
    CHECK(WIFEXITED(process.status()));
    CHECK(WEXITSTATUS(process.status()) == 0);
}
