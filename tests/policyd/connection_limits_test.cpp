// connection_limits_test.cpp — what holds a policyd connection open, and what cannot: a request
// trickled a byte at a time meets its time limit; the connections that came and went do not keep
// SIGTERM waiting for the one still open; a request that fails inside policyd is answered
// DEFER_IF_PERMIT and the session goes on (Session over a socket pair, with a handler that fails).
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>

#include <stdexcept>
#include <thread>

#include "policyd/session.hpp"
#include "tests/fixtures/policyd_process.hpp"
#include "tests/fixtures/redis_server.hpp"

using namespace postwarden::test;
using namespace std::chrono_literals;

namespace {

std::string config_for(RedisServer& redis, const std::string& extra = "") {
    return "[redis]\naddress = " + redis.endpoint().to_string() +
           "\n[dns]\nnameservers = 127.0.0.1:" + std::to_string(free_port()) +
           "\ntimeout_ms = 200\n[greylist]\nenabled = no\n" + extra;
}

Attributes mail() {
    return inbound("192.0.2.1", "a@b.example", "c@example.net");
}

}  // namespace

TEST_CASE("time limits: a request trickled a byte a second is closed at its time limit",
          "[policyd][wire]") {
    RedisServer redis;
    // The time limit of a request is idle_timeout when that is under a minute: 2 s here.
    PolicydProcess policyd(config_for(redis, "[policyd]\nidle_timeout = 2\n"));
    PolicyClient client(policyd.port());
    CHECK(client.ask(mail()) == "DUNNO");
    const auto start = std::chrono::steady_clock::now();
    bool closed = false;
    // Each byte arrives well within idle_timeout of the one before; never a whole request.
    for (int i = 0; i < 8 && !closed; ++i) {
        client.send_raw("x");
        closed = client.closed_by_peer(1s);
    }
    CHECK(closed);
    CHECK(std::chrono::steady_clock::now() - start < 5s);
    CHECK(wait_until(
        [&] { return policyd.log().find("not complete within 2 s") != std::string::npos; }, 2s));
    // a client that asks at its own pace is still served
    PolicyClient other(policyd.port());
    CHECK(other.ask(mail()) == "DUNNO");
}

TEST_CASE("time limits: a client silent between whole requests stays until idle_timeout",
          "[policyd][wire]") {
    RedisServer redis;
    PolicydProcess policyd(config_for(redis, "[policyd]\nidle_timeout = 2\n"));
    PolicyClient client(policyd.port());
    // Requests every 1.2 s: each restarts the idle clock, none is slow.
    for (int i = 0; i < 3; ++i) {
        CHECK(client.ask(mail()) == "DUNNO");
        CHECK_FALSE(client.closed_by_peer(1200ms));
    }
    CHECK(client.closed_by_peer(3s));
}

TEST_CASE("SIGTERM: after many connections came and went, the open one is drained at once",
          "[policyd]") {
    RedisServer redis;
    PolicydProcess policyd(config_for(redis));
    PolicyClient live(policyd.port());
    CHECK(live.ask(mail()) == "DUNNO");
    for (int i = 0; i < 200; ++i) {
        PolicyClient passing(policyd.port());
        REQUIRE(passing.ask(mail()) == "DUNNO");
    }
    const auto start = std::chrono::steady_clock::now();
    kill(policyd.process().pid(), SIGTERM);
    CHECK(live.closed_by_peer(5s));
    CHECK(wait_until([&] { return !policyd.process().running(); }, 5s));
    CHECK(std::chrono::steady_clock::now() - start < 3s);
    CHECK(WIFEXITED(policyd.process().status()));
    CHECK(WEXITSTATUS(policyd.process().status()) == 0);
}

namespace {

namespace asio = boost::asio;
using Socket = asio::local::stream_protocol::socket;
using postwarden::policy::Request;
using postwarden::policy::Session;
using postwarden::policy::SessionContext;

// Runs one Session on one end of a socket pair, answering with `handle`; the test talks to the
// other end with blocking reads and writes.
struct SessionOnPair {
    explicit SessionOnPair(decltype(SessionContext::handle) handle)
        : context{std::move(handle), [this] { return config; }, [](std::uint64_t) {}} {
        auto cfg = std::make_shared<postwarden::Config>();
        cfg->policyd.idle_timeout = 60;
        config = cfg;
        Socket ours(io), theirs(io);
        asio::local::connect_pair(ours, theirs);
        peer = theirs.release();
        std::make_shared<Session<Socket>>(std::move(ours), context)->start();
        thread = std::thread([this] { io.run(); });
    }
    ~SessionOnPair() {
        ::close(peer);
        io.stop();
        thread.join();
    }

    std::string ask(const std::string& request) {
        std::string bytes = request + "\n";
        if (::write(peer, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size()))
            return "write failed";
        std::string reply;
        char c;
        while (reply.size() < 2 || reply.compare(reply.size() - 2, 2, "\n\n") != 0) {
            if (::read(peer, &c, 1) != 1) return "closed";
            reply += c;
        }
        return reply;
    }

    asio::io_context io;
    std::shared_ptr<const postwarden::Config> config;
    SessionContext context;
    int peer = -1;
    std::thread thread;
};

}  // namespace

TEST_CASE("session errors: a request that throws is answered DEFER_IF_PERMIT, the next one too",
          "[policyd][wire]") {
    int calls = 0;
    SessionOnPair pair([&](const Request& r, auto, std::function<void(std::string)> reply) {
        ++calls;
        if (r.get("recipient") == "throw@example.net") throw std::runtime_error("test failure");
        reply("DUNNO");
    });
    CHECK(pair.ask("request=smtpd_access_policy\nrecipient=throw@example.net\n") ==
          "action=DEFER_IF_PERMIT 4.3.0 Policy service internal error\n\n");
    CHECK(pair.ask("request=smtpd_access_policy\nrecipient=ok@example.net\n") ==
          "action=DUNNO\n\n");
    CHECK(calls == 2);
}

TEST_CASE("session errors: a reply callback dropped unanswered is answered DEFER_IF_PERMIT",
          "[policyd][wire]") {
    std::function<void(std::string)> held;
    SessionOnPair pair([&](const Request& r, auto, std::function<void(std::string)> reply) {
        if (r.get("recipient") == "drop@example.net") {
            // Kept for a while by an asynchronous step, then lost without an answer (as when an
            // exception unwinds past the callback that held it).
            held = std::move(reply);
            asio::post(pair.io, [&] { held = nullptr; });
            return;
        }
        reply("DUNNO");
    });
    CHECK(pair.ask("request=smtpd_access_policy\nrecipient=drop@example.net\n") ==
          "action=DEFER_IF_PERMIT 4.3.0 Policy service internal error\n\n");
    CHECK(pair.ask("request=smtpd_access_policy\nrecipient=ok@example.net\n") ==
          "action=DUNNO\n\n");
}
