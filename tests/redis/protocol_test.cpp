// protocol_test.cpp — the RESP codec on its own (no server): encoding, incremental decoding
// in any split, nesting limits and hostile input, and Script's SHA1.
#include <catch2/catch.hpp>

#include "common/redis_protocol.hpp"

using namespace postwarden::redis;
using Type = Value::Type;
using namespace std::string_literals;

TEST_CASE("commands are encoded as binary-safe RESP arrays", "[redis][protocol]") {
    std::string out = "prefix";
    append_command(out, {"SET", std::string("a\0b", 3), ""});
    CHECK(out == std::string("prefix*3\r\n$3\r\nSET\r\n$3\r\na\0b\r\n$0\r\n\r\n", 34));
}

TEST_CASE("replies decode the same whatever the read boundaries", "[redis][protocol]") {
    const std::string wire =
        "+OK\r\n-ERR bad\r\n:-42\r\n$-1\r\n$5\r\na\r\nb\0\r\n*3\r\n*2\r\n:1\r\n*0\r\n$1\r\nx\r\n$-1\r\n*-1\r\n"s;
    for (std::size_t step : {std::size_t{1}, std::size_t{2}, std::size_t{7}, wire.size()}) {
        ReplyReader reader;
        std::vector<Value> values;
        for (std::size_t i = 0; i < wire.size(); i += step) {
            REQUIRE(reader.feed(wire.data() + i, std::min(step, wire.size() - i)));
            Value v;
            while (reader.next(v) == ReplyReader::Status::reply)
                values.push_back(std::move(v));
        }
        REQUIRE(values.size() == 7);
        CHECK(values[0].type == Type::status);
        CHECK(values[1].type == Type::error);
        CHECK(values[1].str == "ERR bad");
        CHECK(values[2].integer == -42);
        CHECK(values[3].type == Type::nil);
        CHECK(values[4].str == std::string("a\r\nb\0", 5));
        REQUIRE(values[5].elements.size() == 3);
        CHECK(values[5].elements[0].elements[0].integer == 1);
        CHECK(values[5].elements[0].elements[1].type == Type::array);
        CHECK(values[5].elements[1].str == "x");
        CHECK(values[5].elements[2].type == Type::nil);
        CHECK(values[6].type == Type::nil);
    }
}

TEST_CASE("malformed and hostile replies are errors, not crashes", "[redis][protocol]") {
    auto decode = [](const std::string& wire) {
        ReplyReader reader;
        Value v;
        if (!reader.feed(wire.data(), wire.size())) return ReplyReader::Status::error;
        return reader.next(v);
    };
    CHECK(decode("?what\r\n") == ReplyReader::Status::error);
    CHECK(decode(":12x\r\n") == ReplyReader::Status::error);
    CHECK(decode("*-5\r\n") == ReplyReader::Status::error);
    CHECK(decode("*9999999999999\r\n") == ReplyReader::Status::error);
    std::string deep;
    for (int i = 0; i < 9; ++i)
        deep += "*1\r\n";
    CHECK(decode(deep + ":1\r\n") == ReplyReader::Status::error);  // deeper than 7 levels
    CHECK(decode("$10\r\nshort") == ReplyReader::Status::incomplete);
}

TEST_CASE("a script's SHA1 is the one Redis computes", "[redis][protocol]") {
    CHECK(Script("return 1").sha1() == "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    CHECK(Script("").sha1() == "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}
