// redis.cpp — Client: owns the current Connection, reconnects with backoff, logs connection
// state changes once each, and turns eval() into EVALSHA with one EVAL retry on NOSCRIPT.
// With [redis] sentinels, each connect asks the Sentinels where the master is (sentinel.hpp),
// and a failover they announce closes the connection and opens one to the new master at once.
// A command is never sent again on another connection: one whose answer was lost in a switch
// fails like a timeout, and its caller answers per fail_mode.
//
// Threading: the io_context's thread only (see redis.hpp). Timer and connection handlers hold a
// weak_ptr to Impl, so destroying the Client leaves them nothing to do.
#include "common/redis/redis.hpp"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>

#include "common/log.hpp"
#include "common/redis/redis_connection.hpp"
#include "common/redis/sentinel.hpp"

namespace postwarden::redis {

namespace asio = boost::asio;

namespace {
constexpr std::chrono::milliseconds min_backoff{100};
constexpr std::chrono::milliseconds max_backoff{2000};

Reply failure(const std::string& reason) {
    return Reply{false, reason, {}};
}

bool is_noscript(const Reply& reply) {
    return reply.ok && reply.value.is_error() && reply.value.str.rfind("NOSCRIPT", 0) == 0;
}

std::string client_name(const Options& options) {
    if (options.sentinels.empty()) return "redis " + options.address.to_string();
    return "redis master '" + options.master_name + "'";
}

bool same_place(const Endpoint& a, const Endpoint& b) {
    return a.kind == b.kind && a.host == b.host && a.port == b.port && a.path == b.path;
}
}  // namespace

class Client::Impl : public std::enable_shared_from_this<Impl> {
  public:
    Impl(asio::io_context& io, Options options)
        : io_(io),
          options_(std::move(options)),
          name_(client_name(options_)),
          stats_(std::make_shared<Stats>()),
          retry_timer_(io) {}
    void init_sentinels();

    void start();
    void stop();
    bool connected() const { return connection_ && connection_->is_ready(); }
    std::optional<Endpoint> master() const {
        return sentinels_ ? std::optional<Endpoint>(target_) : std::nullopt;
    }
    void command(std::vector<std::string> argv, Callback done);
    void send(const std::vector<std::string>& argv, Callback done);  // command() without a copy
    bool refused(std::size_t n, Callback& done);
    void eval(const Script& script, std::vector<std::string> keys, std::vector<std::string> args,
              Callback done);
    void transaction(const Batch& commands, Callback done);
    Stats stats() const { return *stats_; }

  private:
    void connect();
    void open(const Endpoint& address);
    void master_changed(const std::optional<Endpoint>& master);
    void move_to(const Endpoint& master);
    void on_ready();
    void on_failed(const std::string& reason);
    void schedule_retry();

    asio::io_context& io_;
    const Options options_;
    const std::string name_;  // how log lines name this Redis
    std::shared_ptr<Stats> stats_;
    std::shared_ptr<Connection> connection_;  // null while waiting to reconnect or stopped
    asio::steady_timer retry_timer_;
    bool running_ = false;
    bool was_ready_ = false;    // the current connection got past the handshake
    bool ever_ready_ = false;   // for "connected" versus "restored" in the log
    std::string last_problem_;  // logged once; repeats of it while reconnecting are not
    std::chrono::milliseconds backoff_ = min_backoff;
    // Sentinel mode only (null otherwise): where the master is, and where connection_ goes.
    std::unique_ptr<Sentinels> sentinels_;
    Endpoint target_;
    std::optional<Endpoint> next_;  // announced by a Sentinel: the next connect goes there
    bool discovering_ = false;      // a find_master() is in flight for the next connect
    std::uint64_t attempt_ = 0;     // answers of older find_master() calls are ignored
};

// After construction: the Sentinels' callbacks hold a weak_ptr to this.
void Client::Impl::init_sentinels() {
    if (options_.sentinels.empty()) return;
    std::weak_ptr<Impl> weak = shared_from_this();
    sentinels_ = std::make_unique<Sentinels>(io_, options_, [weak](const auto& master) {
        if (auto self = weak.lock()) self->master_changed(master);
    });
}

void Client::Impl::start() {
    if (running_) return;
    running_ = true;
    backoff_ = min_backoff;
    if (sentinels_) sentinels_->start();
    connect();
}

void Client::Impl::stop() {
    running_ = false;
    retry_timer_.cancel();
    if (sentinels_) sentinels_->stop();
    ++attempt_;
    discovering_ = false;
    next_.reset();
    if (connection_) connection_->close("stopped");
    connection_.reset();
    was_ready_ = false;
}

void Client::Impl::connect() {
    if (!sentinels_) return open(options_.address);
    if (next_) {
        auto master = *next_;
        next_.reset();
        return open(master);
    }
    discovering_ = true;
    std::weak_ptr<Impl> weak = shared_from_this();
    sentinels_->find_master([weak, attempt = ++attempt_](auto master, const std::string& why) {
        auto self = weak.lock();
        if (!self || attempt != self->attempt_ || !self->running_) return;
        self->discovering_ = false;
        if (!master) return self->on_failed("no Sentinel named the master: " + why);
        self->open(*master);
    });
}

void Client::Impl::open(const Endpoint& address) {
    target_ = address;
    if (sentinels_) {
        Options options = options_;
        options.address = address;
        connection_ = std::make_shared<Connection>(io_, options, stats_);
    } else {
        connection_ = std::make_shared<Connection>(io_, options_, stats_);
    }
    std::weak_ptr<Impl> weak = shared_from_this();
    connection_->open(
        [weak] {
            if (auto self = weak.lock()) self->on_ready();
        },
        [weak](const std::string& reason) {
            if (auto self = weak.lock()) self->on_failed(reason);
        });
}

void Client::Impl::on_ready() {
    ++stats_->connects;
    backoff_ = min_backoff;
    was_ready_ = true;
    const std::string where = sentinels_ ? " at " + target_.to_string() : "";
    if (ever_ready_ || !last_problem_.empty())
        log::notice(name_ + ": connection restored" + where);
    else
        log::info(name_ + ": connected" + where);
    ever_ready_ = true;
    last_problem_.clear();
    if (options_.on_ready) options_.on_ready();
}

void Client::Impl::on_failed(const std::string& reason) {
    connection_.reset();
    if (was_ready_) {
        was_ready_ = false;
        ++stats_->disconnects;
        log::warning(name_ + ": connection lost: " + reason);
    } else if (reason != last_problem_) {
        log::warning(name_ + ": cannot connect: " + reason);
    }
    last_problem_ = reason;
    if (next_ && running_) return connect();  // a Sentinel named the new master: go there now
    schedule_retry();
}

// From the Sentinels' watch: a new master announced, or (nullopt) the watch was set up again
// and the master must be asked for, in case a switch was missed while nobody watched.
void Client::Impl::master_changed(const std::optional<Endpoint>& master) {
    if (!running_) return;
    if (master) return move_to(*master);
    if (!connected()) return;  // the connect under way asks the Sentinels anyway
    std::weak_ptr<Impl> weak = shared_from_this();
    sentinels_->find_master([weak](auto found, const std::string&) {
        auto self = weak.lock();
        if (self && found && self->running_) self->move_to(*found);
    });
}

// The connection to an old master ends now (its commands fail: a write whose answer is lost
// is never sent again elsewhere); the next one goes to the new master without waiting.
void Client::Impl::move_to(const Endpoint& master) {
    if (connection_ && same_place(target_, master)) return;
    log::notice(name_ + ": Sentinel names a new master, " + master.to_string());
    next_ = master;
    backoff_ = min_backoff;
    ++attempt_;  // a discovery in flight is overtaken
    discovering_ = false;
    retry_timer_.cancel();
    if (connection_) return connection_->drop("the master moved to " + master.to_string());
    connect();
}

void Client::Impl::schedule_retry() {
    retry_timer_.expires_after(backoff_);
    backoff_ = std::min(backoff_ * 2, max_backoff);
    std::weak_ptr<Impl> weak = shared_from_this();
    retry_timer_.async_wait([weak](const boost::system::error_code& error) {
        auto self = weak.lock();
        if (!self || error || !self->running_ || self->connection_ || self->discovering_) return;
        self->connect();
    });
}

void Client::Impl::command(std::vector<std::string> argv, Callback done) {
    send(argv, std::move(done));
}

void Client::Impl::send(const std::vector<std::string>& argv, Callback done) {
    if (argv.empty()) return post_reply(io_, std::move(done), failure("empty command"));
    if (refused(1, done)) return;
    connection_->send(argv, std::move(done));
}

// Fails done (posted) when n more commands cannot be sent now.
bool Client::Impl::refused(std::size_t n, Callback& done) {
    if (!connected()) {
        count_failure(options_, Failure::not_connected);
        post_reply(io_, std::move(done), failure("not connected"));
        return true;
    }
    if (connection_->pending() + n > options_.max_pending) {
        count_failure(options_, Failure::overloaded);
        post_reply(io_, std::move(done), failure("too many pending commands"));
        return true;
    }
    return false;
}

// The connection writes what it is given in order, in one event-loop turn: nothing can come
// between MULTI and EXEC. Only EXEC's answer matters; MULTI's OK and each QUEUED have no
// callback and are dropped (a command Redis refuses while queueing makes EXEC answer
// EXECABORT), and the metrics count the transaction once, as EXEC.
void Client::Impl::transaction(const Batch& commands, Callback done) {
    static const std::string multi = "*1\r\n$5\r\nMULTI\r\n", exec = "*1\r\n$4\r\nEXEC\r\n";
    if (commands.size() == 0) return post_reply(io_, std::move(done), failure("empty transaction"));
    if (refused(commands.size() + 2, done)) return;
    connection_->send_encoded(multi, 1, nullptr);
    connection_->send_encoded(commands.encoded(), commands.size(), nullptr);
    connection_->send_encoded(exec, 1, std::move(done));
}

// EVALSHA first; Redis forgets scripts on restart and SCRIPT FLUSH, so NOSCRIPT is expected now
// and then and answered by one EVAL with the text (which caches it again), never a loop. The
// arguments are kept for that fallback, not copied, and the text is shared (scripts are KBs).
void Client::Impl::eval(const Script& script, std::vector<std::string> keys,
                        std::vector<std::string> args, Callback done) {
    auto argv = std::make_shared<std::vector<std::string>>();
    argv->reserve(3 + keys.size() + args.size());
    argv->insert(argv->end(), {"EVALSHA", script.sha1(), std::to_string(keys.size())});
    std::move(keys.begin(), keys.end(), std::back_inserter(*argv));
    std::move(args.begin(), args.end(), std::back_inserter(*argv));
    std::weak_ptr<Impl> weak = shared_from_this();
    auto on_reply = [weak, argv, text = script.shared_text(),
                     done = std::move(done)](Reply reply) mutable {
        if (!is_noscript(reply)) return done(std::move(reply));
        auto self = weak.lock();
        if (!self) return done(failure("stopped"));
        (*argv)[0] = "EVAL";
        (*argv)[1] = *text;
        self->command(std::move(*argv), std::move(done));
    };
    send(*argv, std::move(on_reply));
}

// A cluster client forwards everything to its ClusterClient, which holds a plain Client per node.
Client::Client(asio::io_context& io, Options options) {
    if (options.cluster) cluster_ = make_cluster_client(io, options);
    impl_ = std::make_shared<Impl>(io, std::move(options));
    impl_->init_sentinels();
}

Client::~Client() {
    impl_->stop();
}

void Client::start() {
    if (cluster_) return cluster_->start();
    impl_->start();
}
void Client::stop() {
    if (cluster_) return cluster_->stop();
    impl_->stop();
}
bool Client::connected() const {
    return cluster_ ? cluster_->connected() : impl_->connected();
}
std::optional<Endpoint> Client::master() const {
    return impl_->master();
}
Stats Client::stats() const {
    return cluster_ ? cluster_->stats() : impl_->stats();
}

void Client::command(std::vector<std::string> argv, Callback done) {
    if (cluster_) return cluster_->command(std::move(argv), std::move(done));
    impl_->command(std::move(argv), std::move(done));
}

void Client::eval(const Script& script, std::vector<std::string> keys,
                  std::vector<std::string> args, Callback done) {
    if (cluster_) return cluster_->eval(script, std::move(keys), std::move(args), std::move(done));
    impl_->eval(script, std::move(keys), std::move(args), std::move(done));
}

void Client::transaction(const Batch& commands, Callback done) {
    if (cluster_) return cluster_->transaction(commands, std::move(done));
    impl_->transaction(commands, std::move(done));
}

void Batch::add(std::initializer_list<std::string_view> argv) {
    if (argv.size() == 0) return;
    append_command(encoded_, argv);
    ++count_;
}

void Batch::add(const std::vector<std::string>& argv) {
    if (argv.empty()) return;
    append_command(encoded_, argv);
    ++count_;
}

void Batch::append(const Batch& other) {
    encoded_ += other.encoded_;
    count_ += other.count_;
}

}  // namespace postwarden::redis
