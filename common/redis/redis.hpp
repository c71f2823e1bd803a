// redis.hpp — the asynchronous Redis client both daemons use for their state (SPEC §3, §4).
//
// hiredis is only the reply decoder (redisReader; commands are encoded here, redis_protocol.cpp);
// Boost.Asio owns the TCP or unix socket, so the client has its own per-command timeouts,
// pipelining and reconnects.
//
// Entry points: Client (start, stop, command, eval, transaction), Batch, Script; Value, Reply and
// Options are in redis_types.hpp, which this header includes.
//
// Threading: a Client lives on one io_context and is not thread-safe. Call its members from the
// thread that runs that io_context (or before it runs). Every callback runs on that thread,
// exactly once, and never synchronously inside command()/eval()/stop(): it is posted, so a
// callback may call command(), stop() or destroy the Client without re-entering it.
//
// Failure convention: Reply::ok is false when Redis gave no answer (not connected, timeout,
// connection lost, protocol error, stopped, too many pending commands); Reply::error says which.
// A Redis error reply ("-ERR ...", "-WRONGTYPE ...") is an answer: ok is true and the Value has
// Type::error with the message in str.
//
// This header keeps Asio and hiredis out (pimpl), so files that include it compile fast.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/redis/redis_types.hpp"

namespace boost::asio {
class io_context;
}

namespace postwarden::redis {

class ClusterClient;
class Client;
class Script;
class Batch;

// What Client forwards to when Options::cluster is set: ClusterClient (common/redis/cluster.hpp)
// implements it, and make_cluster_client (defined there) makes one, so this file and the client
// need not include the cluster's.
class Forward {
  public:
    virtual ~Forward() = default;
    virtual void start() = 0;
    virtual void stop() = 0;
    virtual bool connected() const = 0;
    virtual void command(std::vector<std::string> argv, Callback done) = 0;
    virtual void eval(const Script& script, std::vector<std::string> keys,
                      std::vector<std::string> args, Callback done) = 0;
    virtual void transaction(const Batch& commands, Callback done) = 0;
    virtual Stats stats() const = 0;
};
std::unique_ptr<Forward> make_cluster_client(boost::asio::io_context& io, Options options);

// A Lua script and its SHA1, computed here, so EVALSHA needs no SCRIPT LOAD first.
class Script {
  public:
    explicit Script(std::string text);
    const std::string& text() const { return *text_; }
    const std::string& sha1() const { return sha1_; }  // 40 lower-case hex digits
    // The text, shared: what a call keeps for its EVAL fallback instead of a copy.
    std::shared_ptr<const std::string> shared_text() const { return text_; }

  private:
    std::shared_ptr<const std::string> text_;
    std::string sha1_;
};

// Commands encoded for Redis as they are added, without a vector per command: what a caller
// that sends several commands per request (a transaction) builds. An empty argv is ignored.
class Batch {
  public:
    void add(std::initializer_list<std::string_view> argv);
    void add(const std::vector<std::string>& argv);  // for a command of variable length
    void append(const Batch& other);
    void reserve(std::size_t bytes) { encoded_.reserve(bytes); }  // of RESP, to grow once
    std::size_t size() const { return count_; }                   // commands, so replies to expect
    const std::string& encoded() const { return encoded_; }       // RESP

  private:
    std::string encoded_;
    std::size_t count_ = 0;
};

class Client {
  public:
    Client(boost::asio::io_context& io, Options options);
    ~Client();  // stop()s; pending callbacks are still posted as failed
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    // Connects, then keeps reconnecting with backoff (100 ms doubling to 2 s) whenever the
    // connection fails, until stop(). Connection state changes are logged once each.
    void start();
    // Cancels timers and I/O and closes the socket; every pending callback is answered with
    // ok=false "stopped" (posted), so the io_context runs out of work. start() may follow.
    void stop();
    // True while a connection is open (and authenticated) and commands are being sent.
    bool connected() const;
    // Through Sentinels, the master the current (or last) connection went to; else nullopt.
    std::optional<Endpoint> master() const;

    // Sends argv as one command (binary-safe). While not connected, fails at once with
    // "not connected" rather than queueing: callers answer per fail_mode within their deadline.
    // Commands issued in one turn of the event loop share one socket write; replies are matched
    // in order.
    void command(std::vector<std::string> argv, Callback done);

    // EVALSHA script.sha1() with keys and args; when Redis answers NOSCRIPT (first use, restart,
    // SCRIPT FLUSH) it is retried once as EVAL with the text, which also caches it in Redis. The
    // retry has its own timeout_ms, so a first call can take up to twice timeout_ms.
    void eval(const Script& script, std::vector<std::string> keys, std::vector<std::string> args,
              Callback done);

    // Sends commands as one MULTI ... EXEC transaction, all in one piece: Redis runs them
    // together, with no other command of any client in between. done gets EXEC's answer: an
    // array of the commands' replies, or an error (EXECABORT when Redis refused one while
    // queueing). All are sent or none: a failure (not connected, too many pending, an empty
    // batch) fails done and sends nothing.
    void transaction(const Batch& commands, Callback done);

    Stats stats() const;

    // With Options::cluster, every call above goes to this (common/redis/cluster.hpp); else null.
    ClusterClient* cluster() const;

  private:
    class Impl;
    std::shared_ptr<Impl> impl_;  // shared with in-flight Asio handlers, which outlive ~Client
    std::unique_ptr<Forward> cluster_;
};

}  // namespace postwarden::redis
