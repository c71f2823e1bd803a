// redis_connection.cpp — Connection: connect (TCP via the resolver, or a unix socket), AUTH,
// then a read loop feeding ReplyReader and a write path that coalesces commands.
//
// Pipelining: send() appends to output_ and posts one flush; everything sent before the flush
// runs (one event-loop turn) goes out in one write, and what accumulates while a write is in
// flight goes out in the next one. Replies are matched to pending_ in FIFO order.
//
// Deadlines: one timer per connection, armed for the earliest moment something can happen (the
// oldest live command's deadline, or the moment the oldest unanswered command makes the
// connection count as stalled), never one timer per command. A command that times out is
// answered at once but stays queued, in the expired prefix, until its late reply arrives, so
// later replies still reach their own callbacks.
#include "common/redis/redis_connection.hpp"

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <exception>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "common/metrics.hpp"

namespace postwarden::redis {

namespace asio = boost::asio;
using generic_stream = asio::generic::stream_protocol;

namespace {
constexpr std::size_t read_chunk = 64 * 1024;
// Buffers that grew for one huge command are released rather than kept for the connection's life.
constexpr std::size_t keep_capacity = 1024 * 1024;

std::chrono::milliseconds stall_limit(int timeout_ms) {
    return std::chrono::milliseconds(std::max(8 * timeout_ms, 1000));
}

Reply failure(const std::string& reason) {
    return Reply{false, reason, {}};
}
}  // namespace

void post_reply(asio::io_context& io, Callback done, Reply reply) {
    if (!done) return;
    asio::post(io, [done = std::move(done), reply = std::move(reply)]() mutable {
        done(std::move(reply));
    });
}

void count_failure(const Options& options, Failure why, std::size_t n) {
    if (options.failures && n > 0) options.failures->inc(static_cast<std::size_t>(why), n);
}

Connection::Connection(asio::io_context& io, const Options& options, std::shared_ptr<Stats> stats)
    : io_(io),
      options_(options),
      stats_(std::move(stats)),
      timeout_(std::chrono::milliseconds(options.timeout_ms)),
      stall_(stall_limit(options.timeout_ms)),
      socket_(io),
      resolver_(io),
      deadline_timer_(io),
      read_buffer_(read_chunk) {}

void Connection::open(Ready ready, Failed failed) {
    ready_ = std::move(ready);
    failed_ = std::move(failed);
    arm_deadline(clock::now() + stall_);  // a blackholed address must not hang the handshake
    if (options_.address.kind == Endpoint::Kind::unix_socket)
        connect_unix();
    else
        connect_inet();
}

void Connection::connect_unix() {
    generic_stream::endpoint endpoint;
    try {
        endpoint = asio::local::stream_protocol::endpoint(options_.address.path);
    } catch (const std::exception& e) {  // path longer than sun_path
        auto self = shared_from_this();
        asio::post(io_, [self, what = std::string(e.what())] { self->fail(what); });
        return;
    }
    socket_.async_connect(endpoint,
                          [self = shared_from_this()](auto error) { self->on_connect(error); });
}

void Connection::connect_inet() {
    auto on_resolved = [self = shared_from_this()](auto error, auto results) {
        if (self->state_ == State::closed) return;
        if (error) return self->fail("cannot resolve: " + error.message());
        std::vector<generic_stream::endpoint> endpoints;
        for (const auto& entry : results)
            endpoints.emplace_back(entry.endpoint());
        asio::async_connect(self->socket_, endpoints,
                            [self](auto error, const auto&) { self->on_connect(error); });
    };
    resolver_.async_resolve(options_.address.host, std::to_string(options_.address.port),
                            asio::ip::tcp::resolver::numeric_service, std::move(on_resolved));
}

void Connection::on_connect(const boost::system::error_code& error) {
    if (state_ == State::closed) return;
    if (error) return fail(error.message());
    if (options_.address.kind == Endpoint::Kind::inet) {
        boost::system::error_code ignored;  // small commands must not wait for Nagle
        socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
        enable_keepalive();
    }
    start_read();
    if (options_.password.empty()) return handshake_done();
    state_ = State::authenticating;
    append_command(output_, {"AUTH", options_.password});
    ++stats_->commands;
    flush();
}

// Through Sentinels, the address given may be stale (a master demoted since): the Sentinel
// client guidelines' ROLE check, before anything is sent there.
void Connection::handshake_done() {
    if (options_.sentinels.empty()) return become_ready();
    state_ = State::checking_role;
    append_command(output_, {"ROLE"});
    ++stats_->commands;
    flush();
}

// A peer that vanished without a FIN or RST (rebooted host, dropped NAT entry) is noticed by the
// kernel after about a minute even on a connection that only receives, such as the list
// cache's subscriber (which also PINGs, list_cache.cpp). Best effort: failures are ignored.
void Connection::enable_keepalive() {
    boost::system::error_code ignored;
    socket_.set_option(asio::socket_base::keep_alive(true), ignored);
    const int fd = socket_.native_handle();
    const int idle = 30, interval = 10, count = 3;
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
}

void Connection::become_ready() {
    state_ = State::ready;
    deadline_timer_.cancel();  // the handshake deadline; commands arm their own
    deadline_armed_ = false;
    if (auto ready = std::move(ready_)) ready();
}

void Connection::close(const std::string& reason) {
    if (state_ == State::closed) return;
    state_ = State::closed;
    boost::system::error_code ignored;
    socket_.close(ignored);
    resolver_.cancel();
    deadline_timer_.cancel();
    for (std::size_t i = expired_; i < pending_.size(); ++i)
        post_reply(io_, std::move(pending_[i].done), failure(reason));
    pending_.clear();
    expired_ = 0;
    // A closed connection calls neither back: owners' callbacks often hold the connection
    // itself (a shared_ptr), which would otherwise keep both alive for good.
    ready_ = nullptr;
    failed_ = nullptr;
}

void Connection::fail(const std::string& reason) {
    auto self = shared_from_this();  // the owner drops its reference inside failed_
    auto answered = std::count_if(pending_.begin() + static_cast<std::ptrdiff_t>(expired_),
                                  pending_.end(), [](const Pending& p) { return bool(p.done); });
    count_failure(options_, Failure::connection_lost, static_cast<std::size_t>(answered));
    auto failed = std::move(failed_);
    close(reason);
    if (failed) failed(reason);
}

void Connection::start_read() {
    socket_.async_read_some(
        asio::buffer(read_buffer_),
        [self = shared_from_this()](auto error, std::size_t size) { self->on_read(error, size); });
}

void Connection::on_read(const boost::system::error_code& error, std::size_t size) {
    if (state_ == State::closed) return;
    if (error == asio::error::eof) return fail("connection closed by Redis");
    if (error) return fail(error.message());
    if (!reader_.feed(read_buffer_.data(), size)) return fail("protocol error: " + reader_.error());
    Value value;
    for (;;) {
        auto status = reader_.next(value);
        if (status == ReplyReader::Status::incomplete) break;
        if (status == ReplyReader::Status::error) return fail("protocol error: " + reader_.error());
        dispatch(std::move(value));
        if (state_ == State::closed) return;
    }
    start_read();
}

static bool is_readonly(const Value& v) {
    return v.str.compare(0, 8, "READONLY") == 0;
}

// A message a subscribed connection receives without asking: ["message", channel, payload].
static bool is_pubsub_message(const Value& v) {
    return v.type == Value::Type::array && v.elements.size() == 3 &&
           v.elements[0].type == Value::Type::string && v.elements[0].str == "message";
}

void Connection::dispatch(Value value) {
    if (state_ == State::authenticating) {
        if (value.is_error()) return fail("authentication failed: " + value.str);
        return handshake_done();
    }
    if (state_ == State::checking_role) {
        const auto& e = value.elements;
        if (value.type == Value::Type::array && !e.empty() && e[0].str == "master")
            return become_ready();
        return fail("not a master (ROLE " + (e.empty() ? value.str : e[0].str).substr(0, 60) + ")");
    }
    if (options_.on_message && is_pubsub_message(value)) return options_.on_message(value);
    // A replica refused a write: through Sentinels the master has moved, so the connection is
    // dropped (its commands fail) and the master asked again.
    if (value.is_error() && is_readonly(value) && !options_.sentinels.empty())
        return fail("a replica answered: " + value.str.substr(0, 80));
    if (pending_.empty()) return fail("protocol error: reply without a command");
    Pending entry = std::move(pending_.front());
    pending_.pop_front();
    if (expired_ > 0) {  // its callback already had "timeout"; the reply only keeps the order
        --expired_;
        ++stats_->late_replies;
        return;
    }
    if (!entry.done) return;  // MULTI and QUEUED inside a transaction: EXEC's reply counts
    if (options_.latency) options_.latency->observe(clock::now() - (entry.deadline - timeout_));
    // Never a write's success, nor an error a caller might read as an answer: no answer.
    if (value.is_error() && is_readonly(value))
        return post_reply(io_, std::move(entry.done), failure("a replica answered (READONLY)"));
    post_reply(io_, std::move(entry.done), Reply{true, {}, std::move(value)});
}

void Connection::send(const std::vector<std::string>& argv, Callback done) {
    append_command(output_, argv);
    queued(1, std::move(done));
}

void Connection::send_encoded(std::string_view encoded, std::size_t replies, Callback last) {
    output_.append(encoded);
    queued(replies, std::move(last));
}

// Expects replies more replies, the last for last (the others have no callback).
void Connection::queued(std::size_t replies, Callback last) {
    stats_->commands += replies;
    const auto deadline = clock::now() + timeout_;
    for (std::size_t i = 1; i < replies; ++i)
        pending_.push_back(Pending{nullptr, deadline});
    pending_.push_back(Pending{std::move(last), deadline});
    // When every earlier command has timed out, the timer waits for the stall moment, which
    // lies beyond this command's deadline: bring it forward, or this command waits for the stall.
    auto wake = next_wake();
    if (!deadline_armed_ || wake < deadline_timer_.expiry()) arm_deadline(wake);
    schedule_flush();
}

void Connection::schedule_flush() {
    if (flush_posted_ || write_in_flight_) return;
    flush_posted_ = true;
    asio::post(io_, [self = shared_from_this()] {
        self->flush_posted_ = false;
        self->flush();
    });
}

void Connection::flush() {
    if (state_ == State::closed || write_in_flight_ || output_.empty()) return;
    writing_.swap(output_);
    output_.clear();
    write_in_flight_ = true;
    ++stats_->writes;
    asio::async_write(
        socket_, asio::buffer(writing_),
        [self = shared_from_this()](auto error, std::size_t) { self->on_write(error); });
}

void Connection::on_write(const boost::system::error_code& error) {
    write_in_flight_ = false;
    if (state_ == State::closed) return;
    if (error) return fail(error.message());
    writing_.clear();
    if (writing_.capacity() > keep_capacity) std::string().swap(writing_);
    flush();
}

void Connection::arm_deadline(clock::time_point when) {
    deadline_armed_ = true;
    deadline_timer_.expires_at(when);
    deadline_timer_.async_wait(
        [self = shared_from_this()](auto error) { self->on_deadline(error); });
}

// The earliest moment on_deadline has work: the first live command's deadline, or when the
// oldest unanswered command has waited stall_.
Connection::clock::time_point Connection::next_wake() const {
    auto stalled_at = pending_.front().deadline - timeout_ + stall_;
    if (expired_ < pending_.size()) return std::min(pending_[expired_].deadline, stalled_at);
    return stalled_at;
}

void Connection::on_deadline(const boost::system::error_code& error) {
    if (error == asio::error::operation_aborted || state_ == State::closed) return;
    deadline_armed_ = false;
    if (state_ != State::ready) return fail("timed out connecting");
    if (pending_.empty()) return;
    auto now = clock::now();
    expire_overdue(now);
    if (now >= pending_.front().deadline - timeout_ + stall_) {
        auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(stall_).count();
        return fail("no reply for " + std::to_string(waited) + " ms");
    }
    arm_deadline(next_wake());
}

void Connection::expire_overdue(clock::time_point now) {
    while (expired_ < pending_.size() && pending_[expired_].deadline <= now) {
        if (auto done = std::move(pending_[expired_].done)) {
            post_reply(io_, std::move(done), failure("timeout"));
            ++stats_->timeouts;
            count_failure(options_, Failure::timeout);
        }
        pending_[expired_].done = nullptr;
        ++expired_;
    }
}

}  // namespace postwarden::redis
