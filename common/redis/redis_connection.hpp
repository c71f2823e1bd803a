// redis_connection.hpp — one connection of the Redis client: socket, AUTH handshake, pipelined
// writes, FIFO reply matching and per-command deadlines. It never reconnects: when anything
// goes wrong it closes itself, fails what is pending and tells its owner (Client, redis.cpp),
// which logs, backs off and opens a new Connection.
//
// Entry points: open, send, close. Threading: the io_context's thread only. Asio handlers hold
// a shared_ptr to the Connection, so it outlives its owner's reference until they have run; a
// closed Connection ignores every late completion.
// Internal to common/redis/redis*.cpp; callers use common/redis/redis.hpp.
#pragma once

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/redis/redis_protocol.hpp"
#include "common/redis/redis_types.hpp"

namespace postwarden::redis {

// Runs done(reply) later on io's thread, never inside the caller: callers cannot re-enter.
void post_reply(boost::asio::io_context& io, Callback done, Reply reply);

// Counts n commands that got no answer in options.failures, when it is set.
void count_failure(const Options& options, Failure why, std::size_t n = 1);

class Connection : public std::enable_shared_from_this<Connection> {
  public:
    using Ready = std::function<void()>;
    using Failed = std::function<void(const std::string& reason)>;

    Connection(boost::asio::io_context& io, const Options& options, std::shared_ptr<Stats> stats);

    // Connects and authenticates; then calls ready, or failed once on any later error. Neither
    // is called after close().
    void open(Ready ready, Failed failed);
    // Queues one command (pre: is_ready()). Commands sent in one event-loop turn share a write.
    void send(const std::vector<std::string>& argv, Callback done);
    // Queues replies commands already encoded (RESP); last gets the last one's reply, the
    // others none.
    void send_encoded(std::string_view encoded, std::size_t replies, Callback last);
    // Closes the socket and answers every pending callback with ok=false and reason.
    void close(const std::string& reason);
    // As if the connection had failed: close(reason), counted, then failed(reason).
    void drop(const std::string& reason) { fail(reason); }

    bool is_ready() const { return state_ == State::ready; }
    std::size_t pending() const { return pending_.size(); }

  private:
    using clock = std::chrono::steady_clock;
    enum class State { connecting, authenticating, checking_role, ready, closed };
    struct Pending {
        // Already answered "timeout" when it is in the expired prefix; none for MULTI and QUEUED
        // in a transaction (redis.cpp).
        Callback done;
        clock::time_point deadline;
    };

    void connect_unix();
    void connect_inet();
    void on_connect(const boost::system::error_code& error);
    void enable_keepalive();
    void handshake_done();
    void become_ready();
    void fail(const std::string& reason);

    void start_read();
    void on_read(const boost::system::error_code& error, std::size_t size);
    void dispatch(Value value);

    void queued(std::size_t replies, Callback last);
    void schedule_flush();
    void flush();
    void on_write(const boost::system::error_code& error);

    void arm_deadline(clock::time_point when);
    void on_deadline(const boost::system::error_code& error);
    void expire_overdue(clock::time_point now);
    clock::time_point next_wake() const;

    boost::asio::io_context& io_;
    const Options options_;
    std::shared_ptr<Stats> stats_;
    const clock::duration timeout_;
    const clock::duration stall_;  // oldest command unanswered this long: drop the connection
    State state_ = State::connecting;
    Ready ready_;
    Failed failed_;

    boost::asio::generic::stream_protocol::socket socket_;
    boost::asio::ip::tcp::resolver resolver_;
    boost::asio::steady_timer deadline_timer_;  // handshake deadline, then commands' deadlines
    bool deadline_armed_ = false;

    ReplyReader reader_;
    std::vector<char> read_buffer_;
    std::deque<Pending> pending_;
    std::size_t expired_ = 0;  // the first expired_ entries of pending_ have timed out
    std::string output_;       // encoded commands waiting for the next write
    std::string writing_;      // the bytes of the write in flight; stable until it completes
    bool write_in_flight_ = false;
    bool flush_posted_ = false;
};

}  // namespace postwarden::redis
