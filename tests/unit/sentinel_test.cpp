// sentinel_test.cpp — what a Sentinel says, read at the boundary (common/redis/sentinel.hpp):
// the master's address and +switch-master messages, hostile ones included; and the [redis]
// Sentinel keys of the configuration.
#include <catch2/catch.hpp>

#include "common/config.hpp"
#include "common/redis/sentinel.hpp"

using namespace postwarden;
using redis::Value;

namespace {
Value str(const std::string& s) {
    Value v;
    v.type = Value::Type::string;
    v.str = s;
    return v;
}
Value array(std::vector<Value> elements) {
    Value v;
    v.type = Value::Type::array;
    v.elements = std::move(elements);
    return v;
}
std::string error_of(const std::string& text) {
    std::string error;
    auto c = parse_config(text, "test.conf", &error);
    return c ? "" : error;
}
}  // namespace

TEST_CASE("sentinel: the master's address is read from get-master-addr-by-name", "[sentinel]") {
    std::string problem;
    auto ep = redis::parse_master_address(array({str("10.0.0.5"), str("6380")}), &problem);
    REQUIRE(ep);
    CHECK(ep->to_string() == "10.0.0.5:6380");
    ep = redis::parse_master_address(array({str("2001:db8::5"), str("6379")}), &problem);
    REQUIRE(ep);
    CHECK(ep->to_string() == "[2001:db8::5]:6379");
    CHECK(redis::parse_master_address(array({str("redis-1.example"), str("6379")}), &problem));
}

TEST_CASE("sentinel: anything but a plausible address is no answer", "[sentinel]") {
    std::string problem;
    CHECK_FALSE(redis::parse_master_address(Value{}, &problem));
    CHECK(problem == "does not know the master name");
    Value error;
    error.type = Value::Type::error;
    error.str = "NOAUTH Authentication required.";
    CHECK_FALSE(redis::parse_master_address(error, &problem));
    CHECK(problem.find("NOAUTH") != std::string::npos);
    for (const auto& bad : std::vector<Value>{
             array({str("10.0.0.5")}),
             array({str("10.0.0.5"), str("6379"), str("x")}),
             array({str("10.0.0.5"), str("0")}),
             array({str("10.0.0.5"), str("65536")}),
             array({str("10.0.0.5"), str("63 79")}),
             array({str("10.0.0.5"), str("")}),
             array({str(""), str("6379")}),
             array({str("host name"), str("6379")}),
             array({str("host\r\nX"), str("6379")}),
             array({str(std::string(256, 'a')), str("6379")}),
             array({str("/tmp/redis.sock"), str("6379")}),
             str("10.0.0.5:6379"),
         }) {
        problem.clear();
        CHECK_FALSE(redis::parse_master_address(bad, &problem));
        CHECK(problem == "answered something that is not an address");
    }
}

TEST_CASE("sentinel: +switch-master names the new master of our name only", "[sentinel]") {
    auto ep = redis::parse_switch_master("mymaster 10.0.0.1 6379 10.0.0.2 6380", "mymaster");
    REQUIRE(ep);
    CHECK(ep->to_string() == "10.0.0.2:6380");
    CHECK_FALSE(redis::parse_switch_master("other 10.0.0.1 6379 10.0.0.2 6380", "mymaster"));
    CHECK_FALSE(redis::parse_switch_master("mymaster 10.0.0.1 6379 10.0.0.2", "mymaster"));
    CHECK_FALSE(redis::parse_switch_master("mymaster 10.0.0.1 6379 10.0.0.2 6380 x", "mymaster"));
    CHECK_FALSE(redis::parse_switch_master("mymaster 10.0.0.1 6379 10.0.0.2 99999", "mymaster"));
    CHECK_FALSE(redis::parse_switch_master("mymaster  10.0.0.1 6379 10.0.0.2 6380", "mymaster"));
    CHECK_FALSE(redis::parse_switch_master("", "mymaster"));
    CHECK_FALSE(redis::parse_switch_master(std::string(100000, ' '), "mymaster"));
}

TEST_CASE("sentinel: the [redis] Sentinel keys", "[sentinel][config]") {
    std::string error;
    auto c = parse_config(
        "[redis]\nsentinels = 10.0.0.1:26379, [2001:db8::1]:26379\n"
        "master_name = mail\nsentinel_password = s3cret\n",
        "test.conf", &error);
    REQUIRE(c);
    REQUIRE(c->redis.sentinels.size() == 2);
    CHECK(c->redis.sentinels[1].to_string() == "[2001:db8::1]:26379");
    CHECK(c->redis.master_name == "mail");
    CHECK(c->redis.sentinel_password == "s3cret");
    auto plain = parse_config("", "test.conf", &error);
    REQUIRE(plain);
    CHECK(plain->redis.sentinels.empty());
    CHECK(error_of("[redis]\nsentinels = 10.0.0.1:26379\n") ==
          "test.conf:2: [redis] master_name: must be set when sentinels are (the name in "
          "'sentinel monitor NAME')");
    CHECK(error_of("[redis]\nsentinels = 10.0.0.1\nmaster_name = m\n")
              .find("test.conf:2: [redis] sentinels:") == 0);
    CHECK(error_of("[redis]\nmaster_name = my master\n").find("blanks") != std::string::npos);
    CHECK(
        error_of("[redis]\nsentinels = 10.0.0.1:26379\nmaster_name = m\ncluster = yes\n") ==
        "test.conf:4: [redis] cluster: cannot be combined with sentinels (a cluster fails over by "
        "itself)");
}
