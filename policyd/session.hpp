// session.hpp — one client connection of the policy protocol, over TCP or a unix socket.
//
// Reads whatever arrives, lets the Parser cut it into requests, answers them one at a time and in
// order (Postfix waits for each reply; a client that pipelines still gets replies in order), and
// closes when the client goes away, breaks the protocol (after one clear reply saying why), stays
// silent past idle_timeout after its last complete request, or takes longer than
// request_time_limit() from the first byte of a request to its end (so a client trickling a byte
// at a time cannot hold a connection slot for ever). Nothing is read while a request is answered
// or a reply written, so a client that sends without reading meets TCP back-pressure, and what
// waits in memory is at most one read (4 KB, at most Limits::max_waiting requests) and their
// replies.
//
// Errors stop here: an exception thrown while a request is handled, or a reply callback dropped
// without being called (an exception unwound past it), answers that request DEFER_IF_PERMIT and
// the session goes on.
//
// Threading: all on the io_context thread. Lifetime: shared_ptr kept alive by pending handlers.
#pragma once

#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>

#include "common/config.hpp"
#include "common/log.hpp"
#include "policyd/handler.hpp"
#include "policyd/metrics.hpp"
#include "policyd/protocol.hpp"

namespace postwarden::policy {

// What a session needs from the server: what answers a request (Handler::handle), the current
// configuration, and a way to say it ended (for the connection count), with the id it was given.
struct SessionContext {
    std::function<void(const Request&, std::shared_ptr<const Config>,
                       std::function<void(std::string)>)>
        handle;
    std::function<std::shared_ptr<const Config>()> config;
    std::function<void(std::uint64_t)> closed;
};

// The answer to a request that failed inside policyd: a temporary one, so nothing is lost.
inline constexpr const char* internal_error_action =
    "DEFER_IF_PERMIT 4.3.0 Policy service internal error";

// How long a request may take from its first byte to its end: a minute, or idle_timeout when
// that is shorter. Postfix writes a request at once; only a client holding a slot is slower.
inline std::chrono::seconds request_time_limit(const Config& c) {
    return std::min(std::chrono::seconds(60), std::chrono::seconds(c.policyd.idle_timeout));
}

template <typename Socket>
class Session : public std::enable_shared_from_this<Session<Socket>> {
  public:
    Session(Socket socket, SessionContext& context, std::uint64_t id = 0)
        : socket_(std::move(socket)), timer_(socket_.get_executor()), context_(context), id_(id) {}
    ~Session() { context_.closed(id_); }

    void start() {
        idle_since_ = std::chrono::steady_clock::now();
        arm_timer(idle_since_ + std::chrono::seconds(context_.config()->policyd.idle_timeout));
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
        // and waits out the rest from there. Only a request split over reads may need an
        // earlier wake-up: its own deadline.
        const auto now = std::chrono::steady_clock::now();
        const bool was_partial = parser_.partial();
        const bool ok = parser_.feed(std::string_view(buffer_.data(), n));
        const bool completed = collect();
        if (completed) idle_since_ = now;
        if (!ok) {
            broken_ = true;  // requests before the error are still answered, then the error
            return process_next();
        }
        if (parser_.partial() && (!was_partial || completed)) {
            request_started_ = now;
            const auto deadline = now + request_time_limit(*context_.config());
            if (deadline < timer_.expiry()) arm_timer(deadline);
        }
        process_next();
        read();
    }

    bool collect() {
        bool any = false;
        while (auto r = parser_.next()) {
            queue_.push_back(std::move(*r));
            any = true;
        }
        return any;
    }

    // Called once with the action for one request; if every copy of it is dropped unused (an
    // exception unwound past the callback that held it), the request is answered as an
    // internal error, so the session never waits for ever.
    class Answer {
      public:
        explicit Answer(std::shared_ptr<Session> session) : session_(std::move(session)) {}
        ~Answer() {
            if (!session_) return;
            try {
                metrics().internal_errors.inc();
                log::error("a policy request was dropped unanswered: answered " +
                           std::string(internal_error_action));
                boost::asio::post(session_->socket_.get_executor(),
                                  [s = session_] { s->answered(internal_error_action); });
            } catch (...) {  // out of memory in a destructor: the request deadline closes it
            }
        }
        Answer(const Answer&) = delete;
        Answer& operator=(const Answer&) = delete;

        void operator()(std::string action) {
            if (!session_) return;  // a second answer to the same request
            auto s = std::move(session_);
            if (!s->handling_) return s->answered(action);
            boost::asio::post(s->socket_.get_executor(),
                              [s, action = std::move(action)] { s->answered(action); });
        }

      private:
        std::shared_ptr<Session> session_;
    };

    void process_next() {
        if (busy_ || queue_.empty()) return maybe_close();
        busy_ = true;
        Request request = std::move(queue_.front());
        queue_.pop_front();
        // An answer given inside handle() (DUNNO for other protocol states) continues on a
        // fresh stack, so a client's pipelined requests never recurse; an answer from a later
        // callback (Redis, SPF) is written at once, without another turn of the loop.
        auto answer = std::make_shared<Answer>(this->shared_from_this());
        handling_ = true;
        try {
            context_.handle(request, context_.config(),
                            [answer](std::string action) { (*answer)(std::move(action)); });
        } catch (const std::exception& e) {
            log::error(std::string("policy request failed: ") + e.what());
            metrics().internal_errors.inc();
            (*answer)(internal_error_action);
        } catch (...) {
            log::error("policy request failed: unknown exception");
            metrics().internal_errors.inc();
            (*answer)(internal_error_action);
        }
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

    void arm_timer(std::chrono::steady_clock::time_point deadline) {
        timer_.expires_at(deadline);
        timer_.async_wait([self = this->shared_from_this()](boost::system::error_code ec) {
            if (!ec) self->on_timer();
        });
    }

    // The one timer: idle_timeout since the last complete request, or request_time_limit()
    // since the first byte of a request still incomplete. Time spent answering is the
    // server's, not the client's: neither clock runs then.
    void on_timer() {
        if (closed_ || lingering_) return;
        const auto config = context_.config();
        const auto now = std::chrono::steady_clock::now();
        const auto idle = std::chrono::seconds(config->policyd.idle_timeout);
        const auto limit = request_time_limit(*config);
        if (busy_ || writing_ || !queue_.empty()) {
            idle_since_ = request_started_ = now;
            return arm_timer(now + std::min<std::chrono::steady_clock::duration>(idle, limit));
        }
        if (parser_.partial()) {
            if (now < request_started_ + limit) return arm_timer(request_started_ + limit);
            log::info("closing policy connection: a request not complete within " +
                      std::to_string(limit.count()) + " s of its first byte");
            return close();
        }
        if (now < idle_since_ + idle) return arm_timer(idle_since_ + idle);
        log::info("closing policy connection idle for " +
                  std::to_string(config->policyd.idle_timeout) + " s");
        close();
    }

    Socket socket_;
    boost::asio::steady_timer timer_;
    SessionContext& context_;
    Parser parser_;
    std::array<char, 4096> buffer_;
    std::deque<Request> queue_;
    std::string outbox_, inflight_;
    const std::uint64_t id_;
    std::chrono::steady_clock::time_point idle_since_;       // the last complete request
    std::chrono::steady_clock::time_point request_started_;  // the incomplete request's first byte
    bool reading_ = false, busy_ = false, writing_ = false, handling_ = false;
    bool eof_ = false, broken_ = false, error_sent_ = false, lingering_ = false, closed_ = false;
};

}  // namespace postwarden::policy
