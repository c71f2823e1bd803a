// session.hpp — one client connection of the policy protocol, over TCP or a unix socket.
//
// Reads whatever arrives, lets the Parser cut it into requests, answers them one at a time and in
// order (Postfix waits for each reply; a client that pipelines still gets replies in order), and
// closes when the client goes away, stays silent past idle_timeout, or breaks the protocol (after
// one clear reply saying why). Nothing is read while a request is answered or a reply written, so
// a client that sends without reading meets TCP back-pressure, and what waits in memory is at
// most one read (4 KB, at most Limits::max_waiting requests) and their replies.
//
// Threading: all on the io_context thread. Lifetime: shared_ptr kept alive by pending handlers.
#pragma once

#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>

#include "common/config.hpp"
#include "common/log.hpp"
#include "policyd/handler.hpp"
#include "policyd/metrics.hpp"
#include "policyd/protocol.hpp"

namespace postwarden::policy {

// What a session needs from the server: the handler, the current configuration, and a way to
// say it ended (for the connection count).
struct SessionContext {
    Handler& handler;
    std::function<std::shared_ptr<const Config>()> config;
    std::function<void()> closed;
};

template <typename Socket>
class Session : public std::enable_shared_from_this<Session<Socket>> {
  public:
    Session(Socket socket, SessionContext& context)
        : socket_(std::move(socket)), timer_(socket_.get_executor()), context_(context) {}
    ~Session() { context_.closed(); }

    void start() {
        last_read_ = std::chrono::steady_clock::now();
        arm_idle_timer(std::chrono::seconds(context_.config()->policyd.idle_timeout));
        read();
    }

    // SIGTERM: stop reading; the session ends once its queued requests are answered.
    void drain() {
        eof_ = true;
        boost::system::error_code ignored;
        if (reading_) socket_.cancel(ignored);
        maybe_close();
    }

  private:
    // Reading waits while a request is answered and its reply written (so the queue is empty and
    // nothing is unsent when it starts): a client that sends without reading meets TCP
    // back-pressure instead of growing our memory. And Postfix sends nothing until it has the
    // reply, while Asio tries every read at once: a read started earlier costs a recv that finds
    // nothing. Started from the write's completion, it mostly finds the next request waiting.
    void read() {
        if (reading_ || busy_ || writing_ || eof_ || broken_ || closed_) return;
        reading_ = true;
        socket_.async_read_some(
            boost::asio::buffer(buffer_),
            [self = this->shared_from_this()](auto ec, std::size_t n) { self->on_read(ec, n); });
    }

    void on_read(boost::system::error_code ec, std::size_t n) {
        reading_ = false;
        if (ec) {
            eof_ = true;  // EOF or error: answer what was asked, then close
            return maybe_close();
        }
        // Only noted here: re-arming the timer on every read would cancel a wait (one more
        // handler run) and re-sort the timer queue per request. It fires at the old deadline
        // and waits out the rest from there.
        last_read_ = std::chrono::steady_clock::now();
        if (!parser_.feed(std::string_view(buffer_.data(), n))) {
            collect();  // requests before the error are still answered, then the error
            broken_ = true;
            return process_next();
        }
        collect();
        process_next();
        read();
    }

    void collect() {
        while (auto r = parser_.next())
            queue_.push_back(std::move(*r));
    }

    void process_next() {
        if (busy_ || queue_.empty()) return maybe_close();
        busy_ = true;
        Request request = std::move(queue_.front());
        queue_.pop_front();
        // An answer given inside handle() (DUNNO for other protocol states) continues on a
        // fresh stack, so a client's pipelined requests never recurse; an answer from a later
        // callback (Redis, SPF) is written at once, without another turn of the loop.
        handling_ = true;
        context_.handler.handle(
            request, context_.config(), [self = this->shared_from_this()](std::string action) {
                if (!self->handling_) return self->answered(action);
                boost::asio::post(self->socket_.get_executor(),
                                  [self, action = std::move(action)] { self->answered(action); });
            });
        handling_ = false;
    }

    void answered(const std::string& action) {
        busy_ = false;
        send(format_reply(action));
        process_next();
        read();
    }

    void send(std::string bytes) {
        outbox_ += bytes;
        if (writing_) return;
        writing_ = true;
        inflight_.swap(outbox_);
        boost::asio::async_write(socket_, boost::asio::buffer(inflight_),
                                 [self = this->shared_from_this()](auto ec, std::size_t) {
                                     self->writing_ = false;
                                     self->inflight_.clear();
                                     if (ec) return self->close();
                                     if (!self->outbox_.empty()) return self->send({});
                                     self->maybe_close();
                                     self->read();
                                 });
    }

    // Closes once nothing is left to answer: after EOF, or after a protocol error has been
    // answered with a reply that names it.
    void maybe_close() {
        if (closed_ || busy_ || writing_ || !queue_.empty()) return;
        if (broken_ && !error_sent_) {
            error_sent_ = true;
            metrics().protocol_errors.inc();
            log::warning("policy client broke the protocol: " + parser_.error() + "; closing");
            return send(
                format_reply("DEFER_IF_PERMIT 4.3.0 Policy request malformed: " + parser_.error()));
        }
        if (broken_) return linger();
        if (eof_) close();
    }

    // After an error the client may still be sending; closing with unread input would reset the
    // connection and could destroy our reply before the client reads it. So: half-close, drain
    // what still arrives for up to two seconds, then close.
    void linger() {
        if (lingering_) return;
        lingering_ = true;
        boost::system::error_code ignored;
        socket_.shutdown(Socket::shutdown_send, ignored);
        timer_.expires_after(std::chrono::seconds(2));
        timer_.async_wait([self = this->shared_from_this()](boost::system::error_code ec) {
            if (!ec) self->close();
        });
        discard();
    }

    void discard() {
        socket_.async_read_some(boost::asio::buffer(buffer_),
                                [self = this->shared_from_this()](auto ec, std::size_t) {
                                    if (ec) return self->close();
                                    self->discard();
                                });
    }

    void close() {
        if (closed_) return;
        closed_ = true;
        boost::system::error_code ignored;
        timer_.cancel();
        socket_.close(ignored);
    }

    void arm_idle_timer(std::chrono::steady_clock::duration after) {
        timer_.expires_after(after);
        timer_.async_wait([self = this->shared_from_this()](boost::system::error_code ec) {
            if (ec || self->closed_ || self->lingering_) return;
            const auto idle = std::chrono::seconds(self->context_.config()->policyd.idle_timeout);
            auto since = std::chrono::steady_clock::now() - self->last_read_;
            if (since < idle) return self->arm_idle_timer(idle - since);
            if (self->busy_) return self->arm_idle_timer(idle);  // waiting on us, not the client
            log::info("closing policy connection idle for " +
                      std::to_string(self->context_.config()->policyd.idle_timeout) + " s");
            self->close();
        });
    }

    Socket socket_;
    boost::asio::steady_timer timer_;
    SessionContext& context_;
    Parser parser_;
    std::array<char, 4096> buffer_;
    std::deque<Request> queue_;
    std::string outbox_, inflight_;
    std::chrono::steady_clock::time_point last_read_;
    bool reading_ = false, busy_ = false, writing_ = false, handling_ = false;
    bool eof_ = false, broken_ = false, error_sent_ = false, lingering_ = false, closed_ = false;
};

}  // namespace postwarden::policy
