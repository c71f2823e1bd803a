// metrics_http.cpp — the Prometheus endpoint's HTTP/1.1 server on Boost.Beast; see
// metrics_http.hpp. The only file that includes Beast.
//
// One Connection per client, kept alive as Prometheus keeps it: read a request (headers only,
// bounded), answer it, read the next; a deadline timer closes the connection when a request or a
// response takes longer than io_timeout, which is also how idle connections end. When all
// max_connections are open, a new one closes the one that has waited longest for a request, so
// connections that send nothing cannot keep a scrape out; only as many answering at once can.
#include "common/metrics_http.hpp"

#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <csignal>
#include <list>
#include <optional>
#include <stdexcept>
#include <thread>

#include "common/log.hpp"

namespace postwarden::metrics {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using unix_socket = asio::local::stream_protocol;

namespace {

constexpr std::size_t header_limit = 8 * 1024;
constexpr int max_connections = 16;
constexpr auto io_timeout = std::chrono::seconds(10);
constexpr const char* content_type = "text/plain; version=0.0.4; charset=utf-8";

// A connection as the endpoint may end it to make room.
class Closable {
  public:
    virtual void close() = 0;

  protected:
    ~Closable() = default;
};

// Everything here is on the endpoint's thread only.
struct Shared {
    const Registry& registry;
    int connections = 0;             // open, not yet closed
    std::list<Closable*> waiting{};  // connections waiting for a request, longest first

    // Makes room for one more connection; false when none waits (all are answering).
    bool close_longest_waiting() {
        if (waiting.empty()) return false;
        waiting.front()->close();  // which takes it off the list
        return true;
    }
};

template <typename Socket>
class Connection final : public std::enable_shared_from_this<Connection<Socket>>, public Closable {
  public:
    Connection(Socket socket, Shared& shared)
        : socket_(std::move(socket)),
          timer_(socket_.get_executor()),
          buffer_(header_limit + 1024),
          shared_(shared) {
        ++shared_.connections;
    }
    ~Connection() { forget(); }

    void start() { read(); }

    void close() override {
        forget();
        error_code ignored;
        timer_.cancel();
        socket_.shutdown(Socket::shutdown_both, ignored);
        socket_.close(ignored);
    }

  private:
    void read() {
        parser_.emplace();
        parser_->header_limit(header_limit);
        arm_timer();
        waiting_ = shared_.waiting.insert(shared_.waiting.end(), this);
        http::async_read(
            socket_, buffer_, *parser_,
            [self = this->shared_from_this()](error_code ec, std::size_t) { self->on_read(ec); });
    }

    void stop_waiting() {
        if (waiting_ != shared_.waiting.end()) shared_.waiting.erase(waiting_);
        waiting_ = shared_.waiting.end();
    }

    // No longer counted, nor waiting: once, at close or destruction.
    void forget() {
        stop_waiting();
        if (!closed_) --shared_.connections;
        closed_ = true;
    }

    void on_read(error_code ec) {
        stop_waiting();
        // The client went away, or the timer closed the socket: nothing to answer. A request
        // Beast cannot parse (too long, malformed, with a body) gets 400 and the connection ends.
        static const auto& http_errors =
            http::make_error_code(http::error::end_of_stream).category();
        if (ec == http::error::end_of_stream || (ec && ec.category() != http_errors))
            return close();
        if (ec)
            return respond(http::status::bad_request, "bad request: " + ec.message() + "\n",
                           parser_->get().version(), false);
        const auto& request = parser_->get();
        std::string_view target(request.target().data(), request.target().size());
        target = target.substr(0, target.find('?'));
        if (request.method() != http::verb::get)
            return respond(http::status::method_not_allowed, "only GET\n", request.version(),
                           request.keep_alive());
        if (target != "/metrics")
            return respond(http::status::not_found, "not found; the metrics are at /metrics\n",
                           request.version(), request.keep_alive());
        respond(http::status::ok, shared_.registry.render(), request.version(),
                request.keep_alive());
    }

    void respond(http::status status, std::string body, unsigned version, bool keep_alive) {
        response_ = {};
        response_.result(status);
        response_.version(version ? version : 11);
        response_.keep_alive(keep_alive);
        response_.set(http::field::server, "postwarden");
        response_.set(http::field::content_type,
                      status == http::status::ok ? content_type : "text/plain; charset=utf-8");
        if (status == http::status::method_not_allowed) response_.set(http::field::allow, "GET");
        response_.body() = std::move(body);
        response_.prepare_payload();
        arm_timer();
        http::async_write(socket_, response_,
                          [self = this->shared_from_this()](error_code ec, std::size_t) {
                              if (ec || !self->response_.keep_alive()) return self->close();
                              self->read();
                          });
    }

    // Closes the socket when the current read or write is not done by the deadline. The expiry
    // check skips a wake-up that was already queued when the timer was re-armed.
    void arm_timer() {
        timer_.expires_after(io_timeout);
        timer_.async_wait([self = this->shared_from_this()](error_code ec) {
            if (!ec && self->timer_.expiry() <= std::chrono::steady_clock::now()) self->close();
        });
    }

    Socket socket_;
    asio::steady_timer timer_;
    boost::beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::empty_body>> parser_;
    http::response<http::string_body> response_;
    Shared& shared_;
    std::list<Closable*>::iterator waiting_ = shared_.waiting.end();
    bool closed_ = false;
};

}  // namespace

struct HttpEndpoint::Impl {
    Shared shared;  // before io: connections left in io's queues point at it while it is destroyed
    asio::io_context io;
    std::optional<tcp::acceptor> tcp_acceptor;
    std::optional<unix_socket::acceptor> unix_acceptor;
    asio::steady_timer retry{io};
    std::string unix_path;
    std::thread thread;

    explicit Impl(const Registry& registry) : shared{registry} {}

    template <typename Acceptor>
    void accept(Acceptor& acceptor) {
        acceptor.async_accept([this, &acceptor](error_code ec, auto socket) {
            if (ec == asio::error::operation_aborted) return;
            if (ec) {
                // Out of descriptors and the like: pause rather than spin on the error.
                retry.expires_after(std::chrono::milliseconds(100));
                retry.async_wait([this, &acceptor](error_code e) {
                    if (!e) accept(acceptor);
                });
                return;
            }
            if (shared.connections < max_connections || shared.close_longest_waiting()) {
                using Socket = decltype(socket);
                std::make_shared<Connection<Socket>>(std::move(socket), shared)->start();
            }  // else every connection is answering: this one closes here
            accept(acceptor);
        });
    }

    error_code listen(const Endpoint& where) {
        error_code ec;
        if (where.kind == Endpoint::Kind::unix_socket) {
            struct stat st;
            if (lstat(where.path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode))
                unlink(where.path.c_str());
            auto& a = unix_acceptor.emplace(io);
            a.open(unix_socket(), ec);
            if (!ec) a.bind(unix_socket::endpoint(where.path), ec);
            if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
            if (!ec) unix_path = where.path;
            if (!ec) accept(a);
            return ec;
        }
        tcp::resolver resolver(io);
        auto results = resolver.resolve(where.host, std::to_string(where.port),
                                        tcp::resolver::numeric_service, ec);
        if (!ec && results.empty()) ec = asio::error::host_not_found;
        if (ec) return ec;
        auto& a = tcp_acceptor.emplace(io);
        tcp::endpoint at = *results.begin();
        a.open(at.protocol(), ec);
        if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
        if (!ec) a.bind(at, ec);
        if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
        if (!ec) accept(a);
        return ec;
    }

    void run() {
        for (;;) {
            try {
                io.run();
                return;
            } catch (const std::exception& e) {
                log::error(std::string("metrics endpoint: ") + e.what());
            }
        }
    }
};

HttpEndpoint::HttpEndpoint(const Endpoint& where, const Registry& registry)
    : impl_(std::make_unique<Impl>(registry)) {
    if (auto ec = impl_->listen(where))
        throw std::runtime_error("cannot listen on " + where.to_string() +
                                 " for metrics: " + ec.message());
    // The thread starts with every signal blocked (a new thread inherits the mask): signals stay
    // with the daemon's own handling.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

HttpEndpoint::~HttpEndpoint() {
    impl_->io.stop();
    impl_->thread.join();
    if (!impl_->unix_path.empty()) unlink(impl_->unix_path.c_str());
}

std::unique_ptr<HttpEndpoint> serve(const std::optional<Endpoint>& where,
                                    const Registry& registry) {
    if (!where) return nullptr;
    auto endpoint = std::make_unique<HttpEndpoint>(*where, registry);
    log::info("metrics at " + where->to_string() + " (GET /metrics)");
    return endpoint;
}

}  // namespace postwarden::metrics
