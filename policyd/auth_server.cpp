// auth_server.cpp — the auth-policy HTTP server on Boost.Beast; see auth_server.hpp. The only
// policyd file that includes Beast.
//
// One Connection per Dovecot connection, kept alive as Dovecot's HTTP client keeps it: wait for
// a request's first byte (idle_timeout), read it whole (request_timeout), hand it to the
// AuthHandler, write the answer (request_timeout), wait again. A deadline timer closes the
// connection when a phase overruns, so a slow or silent client holds nothing for long; when all
// max_connections are open, a new one closes the one that has waited longest for a request.
#include "policyd/auth_server.hpp"

#include <pthread.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <csignal>
#include <list>
#include <optional>
#include <stdexcept>
#include <thread>

#include "common/log.hpp"
#include "policyd/auth_handler.hpp"
#include "policyd/metrics.hpp"

namespace postwarden::policy {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using boost::system::error_code;
using tcp = asio::ip::tcp;

namespace {

constexpr std::size_t header_limit = 8 * 1024;
constexpr int max_connections = 1024;
constexpr auto idle_timeout = std::chrono::seconds(60);
constexpr auto request_timeout = std::chrono::seconds(10);

redis::Options redis_options(const Config& c) {
    redis::Options o;
    o.address = c.redis.address;
    o.password = c.redis.password;
    o.timeout_ms = c.redis.timeout_ms;
    // Sentinel and Cluster as for the policy server: without them the auth server would talk to
    // [redis] address alone, and on a cluster or after a failover count nothing (fail_mode).
    o.sentinels = c.redis.sentinels;
    o.master_name = c.redis.master_name;
    o.sentinel_password = c.redis.sentinel_password;
    o.cluster = c.redis.cluster;
    o.seeds = c.redis.seeds;
    o.latency = &metrics().redis_latency;
    o.failures = &metrics().redis_failures;
    return o;
}

class Connection;

// Everything here is on the server's thread only.
struct Shared {
    AuthHandler* handler = nullptr;
    std::shared_ptr<const Config> config;
    int connections = 0;               // open, not yet closed
    std::list<Connection*> waiting{};  // connections waiting for a request, longest first
};

class Connection final : public std::enable_shared_from_this<Connection> {
  public:
    Connection(tcp::socket socket, Shared& shared)
        : socket_(std::move(socket)), timer_(socket_.get_executor()), shared_(shared) {
        ++shared_.connections;
        error_code ignored;
        socket_.set_option(tcp::no_delay(true), ignored);
    }
    ~Connection() { forget(); }

    void start() { wait(); }

    void close() {
        forget();
        error_code ignored;
        timer_.cancel();
        socket_.shutdown(tcp::socket::shutdown_both, ignored);
        socket_.close(ignored);
    }

  private:
    // Idle between requests: waits for the next one's first byte (or takes what is buffered).
    void wait() {
        if (buffer_.size() > 0) return read();
        arm_timer(idle_timeout);
        waiting_ = shared_.waiting.insert(shared_.waiting.end(), this);
        socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](error_code ec) {
            self->stop_waiting();
            if (ec) return self->close();
            self->read();
        });
    }

    void read() {
        parser_.emplace();
        parser_->header_limit(header_limit);
        parser_->body_limit(body_limit);
        arm_timer(request_timeout);
        http::async_read(
            socket_, buffer_, *parser_,
            [self = shared_from_this()](error_code ec, std::size_t) { self->on_read(ec); });
    }

    void stop_waiting() {
        if (waiting_ != shared_.waiting.end()) shared_.waiting.erase(waiting_);
        waiting_ = shared_.waiting.end();
    }

    void forget() {
        stop_waiting();
        if (!closed_) --shared_.connections;
        closed_ = true;
    }

    void on_read(error_code ec) {
        static const auto& http_errors =
            http::make_error_code(http::error::end_of_stream).category();
        if (closed_ || ec == http::error::end_of_stream || (ec && ec.category() != http_errors))
            return close();
        if (ec == http::error::body_limit) {
            count_auth_bad_request("too-large");
            return respond({413, "the body is too large\n", false}, false);
        }
        if (ec) {
            count_auth_bad_request("http");
            return respond({400, "bad request: " + ec.message() + "\n", false}, false);
        }
        const auto& request = parser_->get();
        HttpParts parts;
        parts.method =
            std::string_view(request.method_string().data(), request.method_string().size());
        parts.target = std::string_view(request.target().data(), request.target().size());
        if (auto key = request.find("X-API-Key"); key != request.end())
            parts.api_key = std::string_view(key->value().data(), key->value().size());
        parts.body = request.body();
        const bool keep_alive = request.keep_alive();
        shared_.handler->handle(parts, shared_.config,
                                [self = shared_from_this(), keep_alive](HttpAnswer a) {
                                    self->respond(std::move(a), keep_alive);
                                });
    }

    void respond(HttpAnswer a, bool keep_alive) {
        if (closed_) return;
        response_ = {};
        response_.result(static_cast<http::status>(a.status));
        response_.version(11);
        response_.keep_alive(keep_alive);
        response_.set(http::field::server, "postwarden");
        response_.set(http::field::content_type,
                      a.json ? "application/json" : "text/plain; charset=utf-8");
        if (a.status == 405) response_.set(http::field::allow, "POST");
        response_.body() = std::move(a.body);
        response_.prepare_payload();
        arm_timer(request_timeout);
        http::async_write(socket_, response_,
                          [self = shared_from_this()](error_code ec, std::size_t) {
                              if (ec || !self->response_.keep_alive()) return self->close();
                              self->wait();
                          });
    }

    // Closes the socket when the current phase is not done by the deadline. The expiry check
    // skips a wake-up that was already queued when the timer was re-armed.
    void arm_timer(std::chrono::seconds limit) {
        timer_.expires_after(limit);
        timer_.async_wait([self = shared_from_this()](error_code ec) {
            if (!ec && self->timer_.expiry() <= std::chrono::steady_clock::now()) self->close();
        });
    }

    tcp::socket socket_;
    asio::steady_timer timer_;
    boost::beast::flat_buffer buffer_{header_limit + body_limit};
    std::optional<http::request_parser<http::string_body>> parser_;
    http::response<http::string_body> response_;
    Shared& shared_;
    std::list<Connection*>::iterator waiting_ = shared_.waiting.end();
    bool closed_ = false;
};

}  // namespace

struct AuthServer::Impl {
    Shared shared;  // before io: connections left in io's queues point at it while it is destroyed
    asio::io_context io;
    redis::Client redis;
    AuthHandler handler{redis};
    tcp::acceptor acceptor{io};
    asio::steady_timer retry{io};
    std::thread thread;

    explicit Impl(std::shared_ptr<const Config> config)
        : shared{nullptr, std::move(config)}, io(1), redis(io, redis_options(*shared.config)) {
        shared.handler = &handler;
    }

    void accept() {
        acceptor.async_accept([this](error_code ec, tcp::socket socket) {
            if (ec == asio::error::operation_aborted) return;
            if (ec) {
                // Out of descriptors and the like: pause rather than spin on the error.
                retry.expires_after(std::chrono::milliseconds(100));
                retry.async_wait([this](error_code e) {
                    if (!e) accept();
                });
                return;
            }
            if (shared.connections >= max_connections && !shared.waiting.empty())
                shared.waiting.front()->close();  // which takes it off the list
            if (shared.connections < max_connections)
                std::make_shared<Connection>(std::move(socket), shared)->start();
            accept();  // else every connection is answering: this one closes here
        });
    }

    void listen(const Endpoint& where) {
        error_code ec;
        tcp::resolver resolver(io);
        auto results = resolver.resolve(where.host, std::to_string(where.port),
                                        tcp::resolver::numeric_service, ec);
        if (!ec && results.empty()) ec = asio::error::host_not_found;
        tcp::endpoint at;
        if (!ec) at = *results.begin();
        if (!ec) acceptor.open(at.protocol(), ec);
        if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
        if (!ec) acceptor.bind(at, ec);
        if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
        if (ec)
            throw std::runtime_error("cannot listen on " + where.to_string() +
                                     " for [auth]: " + ec.message());
    }

    // Errors stop at the connection; one that escapes anyway is logged and the loop goes on.
    void run() {
        for (;;) {
            try {
                io.run();
                return;
            } catch (const std::exception& e) {
                log::error(std::string("auth: internal error, going on: ") + e.what());
                metrics().internal_errors.inc();
            }
        }
    }
};

AuthServer::AuthServer(std::shared_ptr<const Config> config)
    : impl_(std::make_unique<Impl>(config)) {
    impl_->listen(*config->auth.listen);
    impl_->redis.start();
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

AuthServer::~AuthServer() {
    impl_->io.stop();
    impl_->thread.join();
}

void AuthServer::accept() {
    asio::post(impl_->io, [impl = impl_.get()] { impl->accept(); });
}

void AuthServer::reload(std::shared_ptr<const Config> config) {
    asio::post(impl_->io, [impl = impl_.get(), config = std::move(config)]() mutable {
        impl->shared.config = std::move(config);
    });
}

std::unique_ptr<AuthServer> serve_auth(std::shared_ptr<const Config> config) {
    if (!config->auth.listen) return nullptr;
    auto where = config->auth.listen->to_string();
    auto server = std::make_unique<AuthServer>(std::move(config));
    log::info("auth policy at http://" + where + "/ (Dovecot auth_policy_server_url)");
    return server;
}

}  // namespace postwarden::policy
