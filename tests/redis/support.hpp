// support.hpp — helpers shared by the Redis client tests: drive an io_context until something
// happens, and make one asynchronous call look synchronous for assertions.
// Threading: the test thread runs the io_context itself; nothing else runs it.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/redis/redis.hpp"
#include "tests/fixtures/process.hpp"

namespace postwarden::test {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// Runs io (one handler at a time) until condition() holds or timeout passes.
template <typename Condition>
bool run_until(boost::asio::io_context& io, Condition condition,
               std::chrono::milliseconds timeout = 5s) {
    auto deadline = steady::now() + timeout;
    while (!condition()) {
        if (steady::now() >= deadline) return false;
        if (io.stopped()) io.restart();
        if (io.run_one_for(10ms) == 0) std::this_thread::sleep_for(1ms);
    }
    return true;
}

// Runs io for a while regardless of what happens.
inline void run_for(boost::asio::io_context& io, std::chrono::milliseconds duration) {
    run_until(
        io, [] { return false; }, duration);
}

// One command, waited for; nullopt when no callback came within 5 s.
inline std::optional<redis::Reply> call(boost::asio::io_context& io, redis::Client& client,
                                        std::vector<std::string> argv) {
    std::optional<redis::Reply> result;
    client.command(std::move(argv), [&](redis::Reply reply) { result = std::move(reply); });
    run_until(io, [&] { return result.has_value(); });
    return result;
}

inline redis::Options options_for(const Endpoint& address, int timeout_ms = 250) {
    redis::Options options;
    options.address = address;
    options.timeout_ms = timeout_ms;
    options.cluster = cluster_tests();  // the address is a seed of RedisServer's cluster then
    return options;
}

inline double elapsed_ms(steady::time_point since) {
    return std::chrono::duration<double, std::milli>(steady::now() - since).count();
}

}  // namespace postwarden::test
