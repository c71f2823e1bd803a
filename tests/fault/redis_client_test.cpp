// redis_client_test.cpp — the Redis client against a frozen redis-server (SIGSTOP): every
// command gets its "timeout" within timeout_ms, including one sent after the earlier commands
// already timed out (and still wait for their late replies). The milter met this: transactions
// that came after the first timed-out ones waited for the 8 × timeout_ms stall, not timeout_ms.
#include <catch2/catch.hpp>

#include <csignal>

#include "tests/fixtures/redis_server.hpp"
#include "tests/redis/support.hpp"

using namespace postwarden;
using namespace postwarden::test;

TEST_CASE("frozen Redis: a command sent after others timed out still times out in time",
          "[fault][redis-client]") {
    RedisServer redis;
    boost::asio::io_context io;
    redis::Client client(io, options_for(redis.endpoint(), 100));
    client.start();
    REQUIRE(run_until(io, [&] { return client.connected(); }));
    REQUIRE(call(io, client, {"PING"})->ok);

    kill(redis.pid(), SIGSTOP);
    auto started = steady::now();
    auto first = call(io, client, {"PING"});
    CHECK(first->error == "timeout");
    CHECK(elapsed_ms(started) < 200);
    // the first PING still waits for its late reply; these come after its timeout
    for (int i = 0; i < 3; ++i) {
        run_for(io, 50ms);
        started = steady::now();
        auto later = call(io, client, {"PING"});
        INFO("command " << i + 2 << " answered after " << elapsed_ms(started) << " ms");
        REQUIRE(later);
        CHECK(later->error == "timeout");
        CHECK(elapsed_ms(started) < 200);
    }
    kill(redis.pid(), SIGCONT);
    CHECK(run_until(io, [&] {
        auto r = call(io, client, {"PING"});
        return r && r->ok;
    }));
}
