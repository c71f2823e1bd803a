// sentinel.cpp — Sentinels: the questions to the Sentinels and a watch on each of them, each
// over a Connection of its own (redis_connection.hpp); a question's is closed when answered.
//
// A Sentinel's answers are outside input: an address is taken only when its host is a plausible
// host name or literal (bounded, no blanks or control bytes) and its port a number from 1 to
// 65535; anything else counts as no answer from that Sentinel.
#include "common/redis/sentinel.hpp"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <chrono>
#include <list>
#include <vector>

#include "common/log.hpp"
#include "common/redis/redis_connection.hpp"

namespace postwarden::redis {

namespace asio = boost::asio;

namespace {

constexpr std::chrono::milliseconds min_backoff{100};
constexpr std::chrono::milliseconds max_backoff{2000};
constexpr std::chrono::milliseconds keepalive_interval{1000};
constexpr std::size_t max_host = 255;

bool plausible_host(std::string_view host) {
    if (host.empty() || host.size() > max_host) return false;
    return std::all_of(host.begin(), host.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '-' || c == ':' || c == '_' || c == '%';
    });
}

std::optional<Endpoint> make_endpoint(std::string_view host, std::string_view port) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (!plausible_host(host) || port.empty() || ec != std::errc() ||
        end != port.data() + port.size() || value == 0 || value > 65535)
        return std::nullopt;
    Endpoint ep;
    ep.host = std::string(host);
    ep.port = static_cast<unsigned short>(value);
    return ep;
}

bool same_place(const Endpoint& a, const Endpoint& b) {
    return a.kind == b.kind && a.host == b.host && a.port == b.port && a.path == b.path;
}

}  // namespace

std::optional<Endpoint> parse_master_address(const Value& reply, std::string* problem) {
    if (reply.type == Value::Type::nil) {
        *problem = "does not know the master name";
        return std::nullopt;
    }
    if (reply.is_error()) {
        *problem = "refused: " + reply.str.substr(0, 200);
        return std::nullopt;
    }
    if (reply.type == Value::Type::array && reply.elements.size() == 2 &&
        reply.elements[0].type == Value::Type::string &&
        reply.elements[1].type == Value::Type::string)
        if (auto ep = make_endpoint(reply.elements[0].str, reply.elements[1].str)) return ep;
    *problem = "answered something that is not an address";
    return std::nullopt;
}

std::optional<Endpoint> parse_switch_master(std::string_view payload,
                                            std::string_view master_name) {
    std::vector<std::string_view> fields;
    while (!payload.empty() && fields.size() <= 5) {
        auto space = payload.find(' ');
        fields.push_back(payload.substr(0, space));
        payload = space == std::string_view::npos ? std::string_view() : payload.substr(space + 1);
    }
    if (fields.size() != 5 || fields[0] != master_name) return std::nullopt;
    return make_endpoint(fields[3], fields[4]);
}

class Sentinels::Impl : public std::enable_shared_from_this<Impl> {
  public:
    Impl(asio::io_context& io, const Options& options, Changed changed)
        : io_(io),
          order_(options.sentinels),
          name_(options.master_name),
          password_(options.sentinel_password),
          timeout_(options.timeout_ms),
          changed_(std::move(changed)),
          stats_(std::make_shared<Stats>()),
          keepalive_timer_(io) {}

    void start();
    void stop();
    void find_master(Found done);

  private:
    struct Query;
    Options for_sentinel(const Endpoint& sentinel) const;
    void ask_next(const std::shared_ptr<Query>& q);
    void attempt_failed(const std::shared_ptr<Query>& q, const std::string& why);
    void found(const std::shared_ptr<Query>& q, const Endpoint& sentinel, const Endpoint& master);

    struct Watch;
    void watch(Watch& w);
    void subscribe(Watch& w, const std::shared_ptr<Connection>& connection);
    void watch_lost(Watch& w, const std::string& reason);
    void schedule_watch(Watch& w);
    bool owns(const Watch* watch, const std::shared_ptr<Connection>& connection) const;
    void schedule_keepalive();
    void keepalive();
    void on_message(const Value& message);

    asio::io_context& io_;
    std::vector<Endpoint> order_;  // the first that answered moves to the head
    const std::string name_, password_;
    const std::chrono::milliseconds timeout_;
    Changed changed_;
    std::shared_ptr<Stats> stats_;  // the Connections' counters; not reported
    bool running_ = false;
    std::list<std::weak_ptr<Query>> queries_;  // in flight, so that stop() can end them

    std::vector<std::unique_ptr<Watch>> watches_;  // one per Sentinel, while running
    asio::steady_timer keepalive_timer_;
};

// The subscription to +switch-master on one Sentinel. Every Sentinel is watched: the one that
// led the failover announces it first, the others only once its configuration reaches them.
struct Sentinels::Impl::Watch {
    Endpoint sentinel;
    std::shared_ptr<Connection> connection;  // null between attempts
    bool subscribed = false, ping_in_flight = false;
    bool lost = false;    // it was down: a switch may have been missed meanwhile
    std::string problem;  // logged once; repeats are not
    std::chrono::milliseconds backoff = min_backoff;
    asio::steady_timer timer;
    Watch(asio::io_context& io, Endpoint where) : sentinel(std::move(where)), timer(io) {}
};

// One find_master(): the Sentinels of the moment, asked one after the other.
struct Sentinels::Impl::Query {
    Found done;
    std::vector<Endpoint> order;
    std::size_t next = 0;
    std::string problems;
    std::shared_ptr<Connection> connection;  // the attempt in progress
    std::unique_ptr<asio::steady_timer> timer;
    bool finished = false;

    void finish(asio::io_context& io, std::optional<Endpoint> master) {
        finished = true;
        if (timer) timer->cancel();
        if (connection) connection->close("done");
        connection.reset();
        asio::post(io, [done = std::move(done), master = std::move(master),
                        problems = std::move(problems)] { done(master, problems); });
    }
};

Options Sentinels::Impl::for_sentinel(const Endpoint& sentinel) const {
    Options o;
    o.address = sentinel;
    o.password = password_;
    o.timeout_ms = static_cast<int>(timeout_.count());
    o.max_pending = 16;
    return o;
}

void Sentinels::Impl::find_master(Found done) {
    queries_.remove_if([](const std::weak_ptr<Query>& q) { return q.expired(); });
    auto q = std::make_shared<Query>();
    q->done = std::move(done);
    q->order = order_;
    q->timer = std::make_unique<asio::steady_timer>(io_);
    queries_.push_back(q);
    ask_next(q);
}

// Each attempt has timeout_ms to connect (and AUTH), then timeout_ms for its answer (the
// Connection's own command deadline).
void Sentinels::Impl::ask_next(const std::shared_ptr<Query>& q) {
    if (q->finished) return;
    if (q->next >= q->order.size()) return q->finish(io_, std::nullopt);
    const Endpoint sentinel = q->order[q->next++];
    auto connection = std::make_shared<Connection>(io_, for_sentinel(sentinel), stats_);
    q->connection = connection;
    std::weak_ptr<Impl> weak = shared_from_this();
    q->timer->expires_after(timeout_);
    q->timer->async_wait([weak, q, connection](const boost::system::error_code& error) {
        auto self = weak.lock();
        if (error || !self || q->connection != connection || connection->is_ready()) return;
        self->attempt_failed(q, "no connection within timeout_ms");
    });
    auto ready = [weak, q, connection, sentinel] {
        auto self = weak.lock();
        if (!self || q->connection != connection) return;
        q->timer->cancel();
        connection->send({"SENTINEL", "get-master-addr-by-name", self->name_},
                         [weak, q, connection, sentinel](Reply reply) {
                             auto self = weak.lock();
                             if (!self || q->connection != connection) return;
                             if (!reply.ok) return self->attempt_failed(q, reply.error);
                             std::string problem;
                             if (auto master = parse_master_address(reply.value, &problem))
                                 return self->found(q, sentinel, *master);
                             self->attempt_failed(q, problem);
                         });
    };
    auto failed = [weak, q, connection](const std::string& reason) {
        auto self = weak.lock();
        if (self && q->connection == connection) self->attempt_failed(q, reason);
    };
    connection->open(std::move(ready), std::move(failed));
}

void Sentinels::Impl::attempt_failed(const std::shared_ptr<Query>& q, const std::string& why) {
    const auto& sentinel = q->order[q->next - 1];
    q->problems += (q->problems.empty() ? "" : "; ") + sentinel.to_string() + ": " + why;
    if (q->connection) q->connection->close(why);
    q->connection.reset();
    ask_next(q);
}

// The guidelines' rotation: the Sentinel that answered is asked first from now on.
void Sentinels::Impl::found(const std::shared_ptr<Query>& q, const Endpoint& sentinel,
                            const Endpoint& master) {
    auto it = std::find_if(order_.begin(), order_.end(),
                           [&](const Endpoint& e) { return same_place(e, sentinel); });
    if (it != order_.end()) std::rotate(order_.begin(), it, it + 1);
    q->finish(io_, master);
}

void Sentinels::Impl::start() {
    if (running_) return;
    running_ = true;
    for (const auto& sentinel : order_) {
        watches_.push_back(std::make_unique<Watch>(io_, sentinel));
        watch(*watches_.back());
    }
    schedule_keepalive();
}

void Sentinels::Impl::stop() {
    running_ = false;
    keepalive_timer_.cancel();
    for (auto& w : watches_) {
        w->timer.cancel();
        if (w->connection) w->connection->close("stopped");
    }
    watches_.clear();  // late handlers find their connection gone and do nothing
    for (auto& weak : queries_)
        if (auto q = weak.lock()) {
            q->finished = true;  // its callback is dropped: nobody waits for it after stop()
            q->timer->cancel();
            if (q->connection) q->connection->close("stopped");
            q->connection.reset();
        }
    queries_.clear();
}

// Handlers hold the Watch's connection and compare it with the Watch's, which they reach
// through the Impl: after stop() (watches_ cleared) they find none and return.
void Sentinels::Impl::watch(Watch& w) {
    if (!running_ || w.connection) return;
    auto options = for_sentinel(w.sentinel);
    std::weak_ptr<Impl> weak = shared_from_this();
    options.on_message = [weak](const Value& message) {
        if (auto self = weak.lock()) self->on_message(message);
    };
    auto connection = std::make_shared<Connection>(io_, options, stats_);
    w.connection = connection;
    Watch* watch = &w;
    connection->open(
        [weak, watch, connection] {
            auto self = weak.lock();
            if (self && self->owns(watch, connection)) self->subscribe(*watch, connection);
        },
        [weak, watch, connection](const std::string& reason) {
            auto self = weak.lock();
            if (self && self->owns(watch, connection)) self->watch_lost(*watch, reason);
        });
}

void Sentinels::Impl::subscribe(Watch& w, const std::shared_ptr<Connection>& connection) {
    std::weak_ptr<Impl> weak = shared_from_this();
    Watch* watch = &w;
    connection->send({"SUBSCRIBE", "+switch-master"}, [weak, watch, connection](Reply reply) {
        auto self = weak.lock();
        if (!self || !self->owns(watch, connection)) return;
        if (!reply.ok || reply.value.is_error())
            return self->watch_lost(
                *watch,
                "SUBSCRIBE failed: " + (reply.ok ? reply.value.str.substr(0, 200) : reply.error));
        watch->subscribed = true;
        watch->backoff = min_backoff;
        if (!watch->problem.empty())
            log::notice("redis sentinel " + watch->sentinel.to_string() +
                        ": watching for failovers again");
        watch->problem.clear();
        // A switch may have been announced while this one was not watched: ask again.
        if (std::exchange(watch->lost, false) && self->changed_) self->changed_(std::nullopt);
    });
}

// Whether watch is still one of ours and its attempt is still `connection` (any, when null):
// a handler that outlived stop() or a newer attempt finds it is not, and does nothing.
bool Sentinels::Impl::owns(const Watch* watch,
                           const std::shared_ptr<Connection>& connection) const {
    for (const auto& each : watches_)
        if (each.get() == watch) return !connection || each->connection == connection;
    return false;
}

// The same Sentinel is watched again after a pause that grows while it cannot be reached.
void Sentinels::Impl::watch_lost(Watch& w, const std::string& reason) {
    if (w.connection) w.connection->close(reason);
    w.connection.reset();
    w.subscribed = w.ping_in_flight = false;
    w.lost = true;
    if (reason != w.problem)
        log::warning("redis sentinel " + w.sentinel.to_string() +
                     ": cannot watch for failovers: " + reason);
    w.problem = reason;
    schedule_watch(w);
}

void Sentinels::Impl::schedule_watch(Watch& w) {
    if (!running_) return;
    w.timer.expires_after(w.backoff);
    w.backoff = std::min(w.backoff * 2, max_backoff);
    std::weak_ptr<Impl> weak = shared_from_this();
    Watch* watch = &w;
    w.timer.async_wait([weak, watch](const boost::system::error_code& error) {
        auto self = weak.lock();
        if (!error && self && self->owns(watch, nullptr)) self->watch(*watch);
    });
}

void Sentinels::Impl::schedule_keepalive() {
    keepalive_timer_.expires_after(keepalive_interval);
    std::weak_ptr<Impl> weak = shared_from_this();
    keepalive_timer_.async_wait([weak](const boost::system::error_code& error) {
        if (auto self = weak.lock(); self && !error) self->keepalive();
    });
}

// A watch that only receives looks the same whether the Sentinel is quiet or gone: a PING
// (answered ["pong", ""] while subscribed) must come back within timeout_ms.
void Sentinels::Impl::keepalive() {
    if (!running_) return;
    std::weak_ptr<Impl> weak = shared_from_this();
    for (auto& w : watches_) {
        if (!w->connection || !w->subscribed || w->ping_in_flight) continue;
        w->ping_in_flight = true;
        Watch* watch = w.get();
        w->connection->send({"PING"}, [weak, watch, connection = w->connection](Reply reply) {
            auto self = weak.lock();
            if (!self || !self->owns(watch, connection)) return;
            watch->ping_in_flight = false;
            if (!reply.ok) self->watch_lost(*watch, "no answer to PING: " + reply.error);
        });
    }
    schedule_keepalive();
}

void Sentinels::Impl::on_message(const Value& message) {
    if (message.elements[1].str != "+switch-master") return;
    auto master = parse_switch_master(message.elements[2].str, name_);
    if (master && changed_) changed_(master);
}

Sentinels::Sentinels(asio::io_context& io, const Options& options, Changed changed)
    : impl_(std::make_shared<Impl>(io, options, std::move(changed))) {}

Sentinels::~Sentinels() {
    impl_->stop();
}

void Sentinels::start() {
    impl_->start();
}

void Sentinels::stop() {
    impl_->stop();
}

void Sentinels::find_master(Found done) {
    impl_->find_master(std::move(done));
}

}  // namespace postwarden::redis
