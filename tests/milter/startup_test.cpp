// startup_test.cpp — what postwarden-milter says when it starts: an authserv_id that is a
// container's host name (12 or 64 hexadecimal digits, a new one with every container) is warned
// about, since forged Authentication-Results carrying the MX's real name would not be removed.
#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

#include "tests/milter/support.hpp"

using namespace postwarden::test;
using namespace std::chrono_literals;

namespace {

std::string startup_log(const std::string& authserv_id) {
    RedisServer redis;
    DnsServer dns{zone()};
    auto text = config(redis, dns);
    text.replace(text.find("mx.rcpt.example"), 15, authserv_id);
    MilterProcess milter(text);
    // Up to 10 s: under ThreadSanitizer on a loaded machine the milter starts slowly.
    for (int i = 0; i < 500 && milter.log().find("listening on") == std::string::npos; ++i)
        std::this_thread::sleep_for(20ms);
    return milter.log();
}

}  // namespace

TEST_CASE("startup: an authserv_id like a container id is warned about", "[milter]") {
    for (const std::string& id : {std::string("3f4e5d6c7b8a"), std::string(64, 'a')}) {
        INFO(id);
        CHECK(startup_log(id).find("looks like a container's host name") != std::string::npos);
    }
    for (const std::string& id : {std::string("mx.rcpt.example"), std::string("3f4e5d6c7b8")}) {
        INFO(id);
        auto log = startup_log(id);
        CHECK(log.find("listening on") != std::string::npos);
        CHECK(log.find("looks like a container's host name") == std::string::npos);
    }
}
