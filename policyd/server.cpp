// server.cpp — listeners, connection limit, signals; see server.hpp.
#include "policyd/server.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <sys/socket.h>

#include <csignal>
#include <cstdint>
#include <list>
#include <map>

#include "common/daemon.hpp"
#include "common/dns/dns_cache.hpp"
#include "common/log.hpp"
#include "common/redis/redis.hpp"
#include "policyd/handler.hpp"
#include "policyd/metrics.hpp"
#include "policyd/session.hpp"
#include "policyd/spf_service.hpp"

namespace postwarden::policy {

namespace asio = boost::asio;
using asio::ip::tcp;
using unix_socket = asio::local::stream_protocol;

namespace {

constexpr int spf_threads = 8;  // SPF threads mostly wait on DNS

redis::Options redis_options(const Config& c, std::function<void()> on_ready = {}) {
    auto o = redis::options_from(c.redis);
    o.on_ready = std::move(on_ready);
    o.latency = &metrics().redis_latency;
    o.failures = &metrics().redis_failures;
    return o;
}

dns::ResolverOptions dns_options(const Config& c) {
    dns::ResolverOptions o;
    o.nameservers = c.dns.nameservers;
    o.timeout_ms = c.dns.timeout_ms;
    o.latency = &metrics().dns_latency;
    o.lookups = &metrics().dns_lookups;
    // One cache for every SPF thread, beneath SpfService's 60 s cache of whole results: it also
    // serves other clients and senders of the same domains, for as long as the TTLs allow.
    if (c.dns.cache_entries > 0)
        o.cache = std::make_shared<dns::AnswerCache>(c.dns.cache_entries, &metrics().dns_cache);
    return o;
}

class Server {
  public:
    Server(std::shared_ptr<const Config> config, std::string path,
           std::function<void(std::shared_ptr<const Config>)> on_reload,
           std::function<void()> on_started)
        : config_(std::move(config)),
          path_(std::move(path)),
          on_reload_(std::move(on_reload)),
          on_started_(std::move(on_started)),
          redis_(io_, redis_options(*config_, [this] { lists_.data_connection_ready(); })),
          lists_(io_, redis_, redis_options(*config_), config_->redis.prefix),
          spf_(io_, dns_options(*config_), spf_threads,
               std::chrono::milliseconds(config_->dns.spf_deadline_ms)),
          handler_(redis_, spf_, lists_),
          signals_(io_, SIGINT, SIGTERM, SIGHUP),
          refusal_log_(io_),
          context_{[this](const Request& request, std::shared_ptr<const Config> config,
                          std::function<void(std::string)> reply) {
                       handler_.handle(request, std::move(config), std::move(reply));
                   },
                   [this] { return config_; },
                   [this](std::uint64_t id) {
                       drains_.erase(id);
                       --connections_;
                       metrics().connections.dec();
                       maybe_exit();
                   }} {}

    int run();

  private:
    bool listen(const Endpoint& ep);
    bool listen_unix(const Endpoint& ep, boost::system::error_code& ec);
    template <typename Acceptor>
    void accept(Acceptor& acceptor, const UnixSocketAccess* access = nullptr);
    bool peer_refused(unix_socket::socket& socket, const UnixSocketAccess& access);
    bool peer_refused(tcp::socket&, const UnixSocketAccess&) { return false; }
    template <typename Socket>
    void admit(Socket socket);
    void run_loop();
    void open_when_ready(std::shared_ptr<asio::steady_timer> timer, int tries_left);
    void wait_signal();
    void reload();
    void shutdown();
    void maybe_exit();

    asio::io_context io_;
    std::shared_ptr<const Config> config_;
    std::string path_;
    std::function<void(std::shared_ptr<const Config>)> on_reload_;
    std::function<void()> on_started_;
    redis::Client redis_;
    ListCache lists_;
    SpfService spf_;
    Handler handler_;
    asio::signal_set signals_;
    asio::steady_timer refusal_log_;
    SessionContext context_;
    std::list<tcp::acceptor> tcp_acceptors_;
    std::list<unix_socket::acceptor> unix_acceptors_;
    std::list<UnixSocketAccess> unix_access_;  // one per unix acceptor, who may connect
    std::map<std::uint64_t, std::function<void()>> drains_;  // one per open session, by its id
    std::uint64_t next_session_id_ = 0;
    int connections_ = 0;
    unsigned long refused_ = 0;
    bool refusing_ = false;
    bool stopping_ = false;
    int exit_code_ = 0;
};

// A unix socket is born with its owner, group and mode (create_unix_socket), and accepts only
// the peers peer_allowed() names. A stale socket left by an earlier run is replaced.
bool Server::listen_unix(const Endpoint& ep, boost::system::error_code& ec) {
    const auto& p = config_->policyd;
    UnixSocketAccess access;
    std::string why = unix_socket_access(ep.path, p.socket_mode, p.socket_group, p.user, &access);
    auto& a = unix_acceptors_.emplace_back(io_);
    if (why.empty())
        why = create_unix_socket(ep.path, access, [&]() -> std::string {
            struct stat st;
            if (lstat(ep.path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) unlink(ep.path.c_str());
            a.open(unix_socket(), ec);
            if (!ec) a.bind(unix_socket::endpoint(ep.path), ec);
            return ec ? ec.message() : "";
        });
    if (!why.empty()) {
        log::error("cannot listen on " + ep.to_string() + ": " + why);
        return false;
    }
    a.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return log::error("cannot listen on " + ep.to_string() + ": " + ec.message()), false;
    accept(a, &unix_access_.emplace_back(access));
    log::info("listening on " + ep.to_string() + " (mode " + std::to_string(access.mode >> 6) +
              std::to_string((access.mode >> 3) & 7) + std::to_string(access.mode & 7) + ", uid " +
              std::to_string(access.uid) + ", gid " + std::to_string(access.gid) + ")");
    return true;
}

bool Server::listen(const Endpoint& ep) {
    boost::system::error_code ec;
    if (ep.kind == Endpoint::Kind::unix_socket) {
        return listen_unix(ep, ec);
    } else {
        tcp::resolver resolver(io_);
        auto results =
            resolver.resolve(ep.host, std::to_string(ep.port), tcp::resolver::numeric_service, ec);
        if (!ec && results.empty()) ec = asio::error::host_not_found;
        if (!ec) {
            auto& a = tcp_acceptors_.emplace_back(io_);
            tcp::endpoint where = *results.begin();
            a.open(where.protocol(), ec);
            if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
            if (!ec) a.bind(where, ec);
            if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
            if (!ec) accept(a);
        }
    }
    if (ec)
        log::error("cannot listen on " + ep.to_string() + ": " + ec.message());
    else
        log::info("listening on " + ep.to_string());
    return !ec;
}

template <typename Acceptor>
void Server::accept(Acceptor& acceptor, const UnixSocketAccess* access) {
    acceptor.async_accept([this, &acceptor, access](boost::system::error_code ec, auto socket) {
        if (ec == asio::error::operation_aborted || stopping_) return;
        if (ec) {
            // Out of descriptors and the like: pause instead of spinning on the error.
            log::warning("accept: " + ec.message());
            auto t = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(100));
            t->async_wait([this, &acceptor, access, t](auto) { accept(acceptor, access); });
            return;
        }
        if (!access || !peer_refused(socket, *access)) admit(std::move(socket));
        accept(acceptor, access);
    });
}

// Another local user must not charge, throttle or block someone else's account (SPEC §6): a
// unix socket's peer is checked by its credentials, whatever the socket's mode lets in.
bool Server::peer_refused(unix_socket::socket& socket, const UnixSocketAccess& access) {
    ucred peer{};
    socklen_t size = sizeof peer;
    const bool known =
        getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &peer, &size) == 0;
    if (known && peer_allowed(access, peer.uid, peer.gid)) return false;
    metrics().connections_unauthorized.inc();
    log::warning(known ? "refused a policy connection from uid " + std::to_string(peer.uid) +
                             " gid " + std::to_string(peer.gid) +
                             ": neither root, the socket's owner nor its group"
                       : std::string("refused a policy connection: its peer is unknown"));
    boost::system::error_code ignored;
    socket.close(ignored);
    return true;
}

template <typename Socket>
void Server::admit(Socket socket) {
    if (connections_ >= config_->policyd.max_connections) {
        boost::system::error_code ignored;
        socket.close(ignored);
        metrics().connections_refused.inc();
        // The first refusal is logged at once; more within 10 s are summed up in one line, so
        // a flood cannot flood the log too.
        if (refusing_) {
            ++refused_;
            return;
        }
        refusing_ = true;
        log::warning("max_connections (" + std::to_string(config_->policyd.max_connections) +
                     ") reached: refusing new connections");
        refusal_log_.expires_after(std::chrono::seconds(10));
        refusal_log_.async_wait([this](boost::system::error_code ec) {
            if (ec) return;
            if (refused_ > 0)
                log::warning("max_connections: refused " + std::to_string(refused_) +
                             " more connection(s) in the last 10 s");
            refused_ = 0;
            refusing_ = false;
        });
        return;
    }
    ++connections_;
    metrics().connections_accepted.inc();
    metrics().connections.inc();
    const std::uint64_t id = ++next_session_id_;
    auto session = std::make_shared<Session<Socket>>(std::move(socket), context_, id);
    std::weak_ptr<Session<Socket>> weak = session;
    drains_.emplace(id, [weak] {
        if (auto s = weak.lock()) s->drain();
    });  // removed when the session ends (context_.closed)
    session->start();
}

void Server::wait_signal() {
    signals_.async_wait([this](boost::system::error_code ec, int signo) {
        if (ec) return;
        if (signo == SIGHUP) {
            reload();
            return wait_signal();
        }
        shutdown();
    });
}

void Server::reload() {
    if (auto fresh = reload_config(path_, *config_, "policyd")) {
        config_ = std::move(fresh);
        if (on_reload_) on_reload_(config_);
    }
}

// SIGTERM: no new connections; sessions answer what they hold and close; then Redis stops and
// run() returns. Whatever is still open after 10 s is cut.
void Server::shutdown() {
    if (stopping_) return;
    stopping_ = true;
    log::notice("stopping: draining " + std::to_string(connections_) + " connection(s)");
    boost::system::error_code ignored;
    for (auto& a : tcp_acceptors_)
        a.close(ignored);
    for (auto& a : unix_acceptors_)
        a.close(ignored);
    signals_.cancel();
    refusal_log_.cancel();
    // A drain may end its session at once, which erases its entry: walk a copy.
    auto drains = drains_;
    for (auto& [id, drain] : drains)
        drain();
    auto deadline = std::make_shared<asio::steady_timer>(io_, std::chrono::seconds(10));
    deadline->async_wait([this, deadline](boost::system::error_code ec) {
        if (!ec) io_.stop();
    });
    maybe_exit();
}

// Errors stop at the session (session.hpp); one that escapes a handler anyway is logged and
// counted, and the loop goes on: the other connections must not end with it.
void Server::run_loop() {
    for (;;) {
        try {
            io_.run();
            return;
        } catch (const std::exception& e) {
            log::error(std::string("internal error, going on: ") + e.what());
        } catch (...) {
            log::error("internal error, going on: unknown exception");
        }
        metrics().internal_errors.inc();
    }
}

void Server::maybe_exit() {
    if (stopping_ && connections_ == 0) {
        lists_.stop();
        redis_.stop();
        io_.stop();
    }
}

// Listening starts once Redis is connected (or after two seconds without it, then per
// fail_mode): the first requests after a start should not be answered blind.
void Server::open_when_ready(std::shared_ptr<asio::steady_timer> timer, int tries_left) {
    if (!redis_.connected() && tries_left > 0) {
        timer->expires_after(std::chrono::milliseconds(10));
        timer->async_wait([this, timer, tries_left](boost::system::error_code ec) {
            if (!ec) open_when_ready(timer, tries_left - 1);
        });
        return;
    }
    if (!redis_.connected())
        log::warning("Redis is not reachable yet; answering per fail_mode until it is");
    for (const auto& ep : config_->policyd.listen)
        if (!listen(ep)) {
            exit_code_ = 1;
            return shutdown();
        }
    // Root (if we have it) was for binding: a low port, a socket in a root-owned directory.
    // Nothing has been accepted yet; a failed switch stops the daemon instead of serving as root.
    if (auto why = drop_privileges(config_->policyd.user); !why.empty()) {
        log::error("[policyd] user: " + why);
        exit_code_ = 1;
        return shutdown();
    }
    log::notice("started; redis " +
                (config_->redis.sentinels.empty()
                     ? config_->redis.address.to_string()
                     : "master '" + config_->redis.master_name + "' through the Sentinels"));
    if (on_started_) on_started_();
}

int Server::run() {
    redis_.start();
    lists_.start();
    wait_signal();
    open_when_ready(std::make_shared<asio::steady_timer>(io_), 200);
    run_loop();
    for (const auto& ep : config_->policyd.listen)
        if (ep.kind == Endpoint::Kind::unix_socket) unlink(ep.path.c_str());
    log::notice("stopped");
    return exit_code_;
}

}  // namespace

int run_server(std::shared_ptr<const Config> config, const std::string& config_path,
               std::function<void(std::shared_ptr<const Config>)> on_reload,
               std::function<void()> on_started) {
    std::signal(SIGPIPE, SIG_IGN);
    Server server(std::move(config), config_path, std::move(on_reload), std::move(on_started));
    return server.run();
}

}  // namespace postwarden::policy
