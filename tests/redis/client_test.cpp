// client_test.cpp — the asynchronous Redis client against a real redis-server: value types,
// binary safety, pipelining, EVALSHA/NOSCRIPT, transactions, AUTH, timeouts, restarts, unix
// sockets, stop().
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include "common/redis/redis.hpp"
#include "tests/fixtures/redis_server.hpp"
#include "tests/redis/support.hpp"

using namespace postwarden;
using namespace postwarden::test;
using Type = redis::Value::Type;

namespace {
// A started client that has connected (or the test fails).
struct Connected {
    boost::asio::io_context io;
    redis::Client client;
    explicit Connected(const redis::Options& options) : client(io, options) {
        client.start();
        REQUIRE(run_until(io, [this] { return client.connected(); }));
    }
};
}  // namespace

TEST_CASE("value types come back as they were sent", "[redis]") {
    RedisServer server;
    Connected c(options_for(server.endpoint()));

    auto set = call(c.io, c.client, {"SET", "k", "v"});
    REQUIRE(set->ok);
    CHECK(set->value.type == Type::status);
    CHECK(set->value.str == "OK");
    CHECK(call(c.io, c.client, {"GET", "k"})->value.str == "v");
    CHECK(call(c.io, c.client, {"GET", "missing"})->value.type == Type::nil);
    auto incr = call(c.io, c.client, {"INCRBY", "n", "-5"});
    CHECK(incr->value.type == Type::integer);
    CHECK(incr->value.integer == -5);
    auto empty = call(c.io, c.client, {"LRANGE", "missing", "0", "-1"});
    CHECK(empty->value.type == Type::array);
    CHECK(empty->value.elements.empty());

    auto error = call(c.io, c.client, {"NOSUCHCOMMAND"});
    REQUIRE(error->ok);  // an error reply is an answer
    CHECK(error->value.is_error());
    CHECK(error->value.str.rfind("ERR", 0) == 0);
}

TEST_CASE("nested arrays are converted recursively", "[redis]") {
    RedisServer server;
    Connected c(options_for(server.endpoint()));
    auto reply = call(c.io, c.client, {"EVAL", "return {1, {2, {3, 'x', {}}}, 'y', false}", "0"});
    REQUIRE(reply->ok);
    const auto& top = reply->value;
    REQUIRE(top.elements.size() == 4);
    CHECK(top.elements[0].integer == 1);
    const auto& inner = top.elements[1].elements[1];
    REQUIRE(inner.elements.size() == 3);
    CHECK(inner.elements[1].str == "x");
    CHECK(inner.elements[2].type == Type::array);
    CHECK(top.elements[2].str == "y");
    CHECK(top.elements[3].type == Type::nil);  // Lua false is a nil reply
}

TEST_CASE("arguments and replies are binary-safe and may be large", "[redis]") {
    RedisServer server;
    Connected c(options_for(server.endpoint(), 5000));
    const std::string key("k\0\r\n\xff", 5);
    const std::string value("\r\n*1\r\n$-1\r\n\0\xfe", 13);
    REQUIRE(call(c.io, c.client, {"SET", key, value})->ok);
    CHECK(call(c.io, c.client, {"GET", key})->value.str == value);

    std::string big(8 * 1024 * 1024, 'x');
    for (std::size_t i = 0; i < big.size(); i += 4093)
        big[i] = static_cast<char>(i);
    REQUIRE(call(c.io, c.client, {"SET", "big", big})->ok);
    auto reply = call(c.io, c.client, {"GET", "big"});
    REQUIRE(reply->ok);
    CHECK(reply->value.str == big);
}

TEST_CASE("commands issued in one turn share writes and keep their order", "[redis]") {
    RedisServer server;
    Connected c(options_for(server.endpoint(), 5000));
    const int count = 10000;
    auto writes_before = c.client.stats().writes;
    int answered = 0, in_order = 0;
    auto start = steady::now();
    for (int i = 0; i < count; ++i) {
        c.client.command({"ECHO", std::to_string(i)}, [&, i](redis::Reply reply) {
            if (reply.ok && reply.value.str == std::to_string(i) && answered == i) ++in_order;
            ++answered;
        });
    }
    CHECK(answered == 0);  // never called inside command()
    REQUIRE(run_until(c.io, [&] { return answered == count; }));
    double ms = elapsed_ms(start);
    CHECK(in_order == count);
    auto writes = c.client.stats().writes - writes_before;
    CHECK(writes == 1);
    CHECK(server.info_field("commandstats", "cmdstat_echo").rfind("calls=10000,", 0) == 0);
    WARN(count << " ECHOs in " << ms << " ms, " << writes << " socket write(s)");
}

TEST_CASE("eval uses EVALSHA and reloads once after NOSCRIPT", "[redis]") {
    RedisServer server;
    Connected c(options_for(server.endpoint()));
    redis::Script script("return {KEYS[1], ARGV[1]}");
    CHECK(script.sha1() == server.run({"SCRIPT", "LOAD", script.text()}).str);
    server.run({"SCRIPT", "FLUSH"});

    auto eval = [&](const std::string& arg) {
        std::optional<redis::Reply> result;
        c.client.eval(script, {"key"}, {arg}, [&](redis::Reply r) { result = std::move(r); });
        REQUIRE(run_until(c.io, [&] { return result.has_value(); }));
        REQUIRE(result->ok);
        REQUIRE(result->value.elements.size() == 2);
        CHECK(result->value.elements[0].str == "key");
        CHECK(result->value.elements[1].str == arg);
    };
    auto calls = [&](const char* command) {
        auto field = server.info_field("commandstats", std::string("cmdstat_") + command);
        return field.empty() ? 0 : std::stoi(field.substr(6));
    };
    eval("a");  // not cached: EVALSHA, NOSCRIPT, EVAL
    eval("b");  // cached by that EVAL
    CHECK(calls("eval") == 1);
    server.run({"SCRIPT", "FLUSH"});
    eval("c");
    CHECK(calls("eval") == 2);
    CHECK(calls("evalsha") == 3);
}

TEST_CASE("a script's own error is returned, not retried", "[redis]") {
    RedisServer server;
    Connected c(options_for(server.endpoint()));
    redis::Script script("return redis.error_reply('NOSCRIPT pretend')");
    std::optional<redis::Reply> result;
    c.client.eval(script, {}, {}, [&](redis::Reply r) { result = std::move(r); });
    REQUIRE(run_until(c.io, [&] { return result.has_value(); }));
    REQUIRE(result->ok);
    CHECK(result->value.is_error());
    CHECK(c.client.stats().commands == 2);  // EVALSHA, then EVAL once: no loop
}

// The commands of a transaction run together, whatever other commands are issued in the same
// turn; its callback gets EXEC's array; one the server refuses aborts them all; and a
// transaction that would pass max_pending is refused whole, nothing of it sent.
TEST_CASE("a transaction is sent in one piece and answered with EXEC's array", "[redis]") {
    RedisServer server;
    auto options = options_for(server.endpoint());
    options.max_pending = 7;  // the first turn below: 7 commands
    Connected c(options);
    std::optional<redis::Reply> tx, before, after;
    c.client.command({"SET", "k", "1"}, [&](redis::Reply r) { before = std::move(r); });
    redis::Batch three;
    three.add({"INCR", "k"});
    three.add({"INCR", "k"});
    three.add({"GET", "k"});
    three.add({});  // ignored
    CHECK(three.size() == 3);
    c.client.transaction(three, [&](redis::Reply r) { tx = std::move(r); });
    c.client.command({"SET", "k", "10"}, [&](redis::Reply r) { after = std::move(r); });
    REQUIRE(run_until(c.io, [&] { return tx && before && after; }));
    REQUIRE(tx->ok);
    REQUIRE(tx->value.type == Type::array);
    REQUIRE(tx->value.elements.size() == 3);
    CHECK(tx->value.elements[0].integer == 2);
    CHECK(tx->value.elements[1].integer == 3);
    CHECK(tx->value.elements[2].str == "3");
    CHECK(server.run({"GET", "k"}).str == "10");

    tx.reset();
    redis::Batch refused;
    refused.add({"INCR", "k"});
    refused.add({"NOSUCHCOMMAND"});
    c.client.transaction(refused, [&](redis::Reply r) { tx = r; });
    REQUIRE(run_until(c.io, [&] { return tx.has_value(); }));
    REQUIRE(tx->ok);
    CHECK(tx->value.is_error());
    CHECK(tx->value.str.rfind("EXECABORT", 0) == 0);
    CHECK(server.run({"GET", "k"}).str == "10");  // the INCR did not run

    // 6 commands + MULTI + EXEC = 8 > max_pending 7: refused, and no MULTI left open
    tx.reset();
    auto commands_before = c.client.stats().commands;
    redis::Batch six;
    for (int i = 0; i < 6; ++i)
        six.add({"INCR", "k"});
    c.client.transaction(six, [&](redis::Reply r) { tx = r; });
    REQUIRE(run_until(c.io, [&] { return tx.has_value(); }));
    CHECK_FALSE(tx->ok);
    CHECK(tx->error == "too many pending commands");
    CHECK(c.client.stats().commands == commands_before);
    auto reply = call(c.io, c.client, {"INCR", "k"});
    REQUIRE(reply);
    CHECK(reply->value.integer == 11);  // answered at once, not QUEUED
}

TEST_CASE("AUTH with the right password connects, a wrong one never does", "[redis]") {
    RedisServer server({"p@ss word\x01", false});
    SECTION("right password") {
        auto options = options_for(server.endpoint());
        options.password = server.password();
        Connected c(options);
        REQUIRE(call(c.io, c.client, {"SET", "k", "v"})->ok);
        CHECK(call(c.io, c.client, {"GET", "k"})->value.str == "v");
    }
    SECTION("wrong password") {
        boost::asio::io_context io;
        auto options = options_for(server.endpoint());
        options.password = "wrong";
        redis::Client client(io, options);
        client.start();
        run_for(io, 500ms);
        CHECK_FALSE(client.connected());
        CHECK(client.stats().connects == 0);
        auto reply = call(io, client, {"PING"});
        CHECK_FALSE(reply->ok);
        CHECK(reply->error == "not connected");
    }
    SECTION("no password: Redis' NOAUTH error is an answer") {
        Connected c(options_for(server.endpoint()));
        auto reply = call(c.io, c.client, {"GET", "k"});
        REQUIRE(reply->ok);
        CHECK(reply->value.str.rfind("NOAUTH", 0) == 0);
    }
}

TEST_CASE("a slow command times out and later replies stay matched", "[redis]") {
    RedisServer server;
    Connected c(options_for(server.endpoint(), 200));
    std::vector<std::string> got;
    double sleep_timeout_ms = 0;
    auto start = steady::now();
    c.client.command({"DEBUG", "SLEEP", "0.6"}, [&](redis::Reply r) {
        sleep_timeout_ms = elapsed_ms(start);
        got.push_back(r.ok ? r.value.str : r.error);
    });
    for (std::string word : {"a", "b"})
        c.client.command({"ECHO", word},
                         [&](redis::Reply r) { got.push_back(r.ok ? r.value.str : r.error); });
    REQUIRE(run_until(c.io, [&] { return got.size() == 3; }));
    CHECK(got == std::vector<std::string>{"timeout", "timeout", "timeout"});
    CHECK(sleep_timeout_ms >= 200);
    CHECK(sleep_timeout_ms < 350);
    WARN("timeout of 200 ms fired after " << sleep_timeout_ms << " ms");

    run_for(c.io, 600ms);  // Redis wakes up; the three late replies are consumed
    auto reply = call(c.io, c.client, {"ECHO", "c"});
    REQUIRE(reply->ok);
    CHECK(reply->value.str == "c");
    CHECK(c.client.stats().late_replies == 3);
    CHECK(c.client.stats().disconnects == 0);
}

TEST_CASE("Redis going away fails commands at once, its return is noticed", "[redis]") {
    RedisServer server;
    Connected c(options_for(server.endpoint()));
    server.stop();
    REQUIRE(run_until(c.io, [&] { return !c.client.connected(); }));

    auto start = steady::now();
    auto reply = call(c.io, c.client, {"PING"});
    CHECK(elapsed_ms(start) < 50);
    CHECK_FALSE(reply->ok);
    CHECK(reply->error == "not connected");

    run_for(c.io, 300ms);  // some reconnect attempts fail meanwhile
    server.start();
    start = steady::now();
    REQUIRE(run_until(c.io, [&] { return c.client.connected(); }));
    WARN("reconnected " << elapsed_ms(start) << " ms after redis-server answered PING");
    reply = call(c.io, c.client, {"PING"});
    REQUIRE(reply->ok);
    CHECK(reply->value.str == "PONG");
    CHECK(c.client.stats().disconnects == 1);
    CHECK(c.client.stats().connects == 2);
}

TEST_CASE("commands in flight when Redis dies fail with the reason", "[redis]") {
    RedisServer server;
    Connected c(options_for(server.endpoint(), 5000));
    std::optional<redis::Reply> result;
    c.client.command({"DEBUG", "SLEEP", "2"}, [&](redis::Reply r) { result = std::move(r); });
    run_for(c.io, 100ms);
    server.stop();  // SIGTERM, then SIGKILL: the server dies inside its sleep
    REQUIRE(run_until(
        c.io, [&] { return result.has_value(); }, 8s));
    CHECK_FALSE(result->ok);
    CHECK(result->error != "timeout");
}

TEST_CASE("a unix socket address works", "[redis]") {
    RedisServer server({"", true});
    Connected c(options_for(server.unix_endpoint()));
    auto reply = call(c.io, c.client, {"PING"});
    REQUIRE(reply->ok);
    CHECK(reply->value.str == "PONG");
    auto info = call(c.io, c.client, {"CLIENT", "INFO"});
    REQUIRE(info->ok);
    CHECK(info->value.str.find("flags=U") != std::string::npos);  // Redis saw a unix socket
}

TEST_CASE("stop() answers pending commands and lets the io_context finish", "[redis]") {
    RedisServer server;
    Connected c(options_for(server.endpoint(), 5000));
    std::vector<std::string> errors;
    c.client.command({"DEBUG", "SLEEP", "0.5"}, [&](redis::Reply r) { errors.push_back(r.error); });
    for (int i = 0; i < 5; ++i)
        c.client.command({"PING"}, [&](redis::Reply r) { errors.push_back(r.error); });
    run_for(c.io, 50ms);  // written, waiting for Redis
    c.client.stop();
    CHECK(errors.empty());  // posted, not called inside stop()
    auto start = steady::now();
    c.io.restart();
    c.io.run();  // returns only when no timer, socket or handler is left
    CHECK(elapsed_ms(start) < 100);
    CHECK(errors == std::vector<std::string>(6, "stopped"));
    CHECK_FALSE(c.client.connected());
}

TEST_CASE("a callback may destroy the client", "[redis]") {
    RedisServer server;
    boost::asio::io_context io;
    auto client = std::make_unique<redis::Client>(io, options_for(server.endpoint()));
    client->start();
    REQUIRE(run_until(io, [&] { return client->connected(); }));
    int calls = 0;
    client->command({"PING"}, [&](redis::Reply) {
        ++calls;
        client->command({"PING"}, [&](redis::Reply r) {
            ++calls;
            CHECK(r.error == "stopped");  // queued, then its Client went away
        });
        client.reset();
    });
    REQUIRE(run_until(io, [&] { return calls == 2; }));
    io.restart();
    io.run();
}

TEST_CASE("not connected and over the cap fail fast, never synchronously", "[redis]") {
    RedisServer server;
    boost::asio::io_context io;
    auto options = options_for(server.endpoint());
    options.max_pending = 10;
    redis::Client client(io, options);
    bool called = false;
    client.command({"PING"}, [&](redis::Reply r) {
        called = true;
        CHECK(r.error == "not connected");
    });
    CHECK_FALSE(called);
    REQUIRE(run_until(io, [&] { return called; }));

    client.start();
    REQUIRE(run_until(io, [&] { return client.connected(); }));
    int ok = 0, refused = 0;
    for (int i = 0; i < 25; ++i)
        client.command({"PING"}, [&](redis::Reply r) {
            if (r.ok) ++ok;
            if (r.error == "too many pending commands") ++refused;
        });
    REQUIRE(run_until(io, [&] { return ok + refused == 25; }));
    CHECK(ok == 10);
    CHECK(refused == 15);
}
