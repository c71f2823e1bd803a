// protocol_test.cpp — the RESP codec on its own (no server): encoding, incremental decoding
// in any split, nesting limits and hostile input, and Script's SHA1.
#include <catch2/catch.hpp>

#include "common/redis/redis.hpp"
#include "common/redis/redis_protocol.hpp"

using namespace postwarden::redis;
using Type = Value::Type;
using namespace std::string_literals;

TEST_CASE("commands are encoded as binary-safe RESP arrays", "[redis][protocol]") {
    std::string out = "prefix";
    append_command(out, {"SET", std::string("a\0b", 3), ""});
    CHECK(out == std::string("prefix*3\r\n$3\r\nSET\r\n$3\r\na\0b\r\n$0\r\n\r\n", 34));
}

// Every reply in wire, fed to one reader step bytes at a time.
static std::vector<Value> decode_in_steps(const std::string& wire, std::size_t step) {
    ReplyReader reader;
    std::vector<Value> values;
    for (std::size_t i = 0; i < wire.size(); i += step) {
        REQUIRE(reader.feed(wire.data() + i, std::min(step, wire.size() - i)));
        Value v;
        while (reader.next(v) == ReplyReader::Status::reply)
            values.push_back(std::move(v));
    }
    return values;
}

TEST_CASE("replies decode the same whatever the read boundaries", "[redis][protocol]") {
    const std::string wire =
        "+OK\r\n-ERR bad\r\n:-42\r\n$-1\r\n$5\r\na\r\nb\0\r\n*3\r\n*2\r\n:1\r\n*0\r\n$1\r\nx\r\n$-1\r\n*-1\r\n"s;
    for (std::size_t step : {std::size_t{1}, std::size_t{2}, std::size_t{7}, wire.size()}) {
        auto values = decode_in_steps(wire, step);
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

// +OK and +QUEUED have a quick path (redis_protocol.cpp): the same values, whatever precedes
// them and however they are split, and look-alikes are still read whole.
TEST_CASE("a transaction's status replies decode the same whatever the read boundaries",
          "[redis][protocol]") {
    const std::string wire =
        "+OK\r\n+QUEUED\r\n+QUEUED\r\n-ERR no\r\n+QUEUED\r\n*2\r\n+OK\r\n:7\r\n+OKAY\r\n"
        "+QUEUEDX\r\n+O\r\n+QUEUED\r\n"s;
    const std::vector<std::string> expected = {"OK", "QUEUED", "QUEUED",  "ERR no", "QUEUED",
                                               "",   "OKAY",   "QUEUEDX", "O",      "QUEUED"};
    for (std::size_t step = 1; step <= wire.size(); ++step) {
        INFO("read " << step << " bytes at a time");
        auto values = decode_in_steps(wire, step);
        REQUIRE(values.size() == expected.size());
        for (std::size_t i = 0; i < values.size(); ++i) {
            if (i == 5) continue;
            CHECK(values[i].str == expected[i]);
            CHECK(values[i].type == (i == 3 ? Type::error : Type::status));
            CHECK(values[i].elements.empty());
        }
        REQUIRE(values[5].type == Type::array);
        REQUIRE(values[5].elements.size() == 2);
        CHECK(values[5].elements[0].type == Type::status);
        CHECK(values[5].elements[0].str == "OK");
        CHECK(values[5].elements[1].integer == 7);
    }
    // Many in one read, past the 1 KB after which hiredis trims its buffer, then more.
    ReplyReader reader;
    std::string many;
    for (int i = 0; i < 300; ++i)
        many += i % 3 ? "+QUEUED\r\n" : ":5\r\n";
    Value v;
    int read = 0;
    for (int round = 0; round < 3; ++round) {
        REQUIRE(reader.feed(many.data(), many.size()));
        while (reader.next(v) == ReplyReader::Status::reply) {
            CHECK((read % 3 ? v.str == "QUEUED" : v.integer == 5));
            ++read;
        }
    }
    CHECK(read == 900);
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

TEST_CASE("replies beyond the reader's limits are errors that name the limit",
          "[redis][protocol]") {
    auto decode = [](const std::string& wire, const ReplyLimits& limits) {
        ReplyReader reader(limits);
        Value v;
        if (!reader.feed(wire.data(), wire.size())) return reader.error();
        return reader.next(v) == ReplyReader::Status::error ? reader.error() : "";
    };
    const ReplyLimits ten_elements{10, 100, 1 << 20};
    CHECK(decode("*11\r\n", ten_elements) == "reply announces 11 elements, more than 10");
    // Ten elements announced, but nested ones count too.
    CHECK(decode("*3\r\n*3\r\n:1\r\n:2\r\n:3\r\n*3\r\n:1\r\n:2\r\n:3\r\n*2\r\n:4\r\n:5\r\n",
                 ten_elements) == "reply has more than 10 elements");
    const ReplyLimits small{10, 100, 4 * sizeof(Value) + 100};
    const std::string forty = "$40\r\n" + std::string(40, 'a') + "\r\n";
    CHECK(decode("*3\r\n" + forty + forty + forty, small) ==
          "reply larger than " + std::to_string(small.max_bytes) + " bytes");
    CHECK(decode("$1000\r\n" + std::string(500, 'x'), small) ==
          "reply has a string longer than 100 bytes");
    CHECK(decode(std::string(500, 'x'), small) ==
          "reply has a string longer than 100 bytes");  // a line without its end
    // Within the limits, and the budget starts again with every reply.
    ReplyReader reader(small);
    for (int i = 0; i < 5; ++i) {
        std::string wire = "*3\r\n:1\r\n$90\r\n" + std::string(90, 'y') + "\r\n+OK\r\n";
        REQUIRE(reader.feed(wire.data(), wire.size()));
        Value v;
        REQUIRE(reader.next(v) == ReplyReader::Status::reply);
        CHECK(v.elements.size() == 3);
    }
}

TEST_CASE("the default limits read a set of a million members", "[redis][protocol]") {
    // What the list cache loads and the CLI lists: SMEMBERS of 10^6 members, read in the
    // connection's 64 KiB chunks.
    std::string wire = "*1000000\r\n";
    for (int i = 0; i < 1000000; ++i) {
        std::string member = "sender" + std::to_string(i) + "@example.org";
        wire += "$" + std::to_string(member.size()) + "\r\n" + member + "\r\n";
    }
    ReplyReader reader;
    Value v;
    auto status = ReplyReader::Status::incomplete;
    for (std::size_t i = 0; i < wire.size(); i += 65536) {
        REQUIRE(reader.feed(wire.data() + i, std::min<std::size_t>(65536, wire.size() - i)));
        status = reader.next(v);
        REQUIRE(status != ReplyReader::Status::error);
    }
    REQUIRE(status == ReplyReader::Status::reply);
    REQUIRE(v.elements.size() == 1000000);
    CHECK(v.elements[999999].str == "sender999999@example.org");
}
