// cluster.cpp — key_slot, routing_key and ClusterClient: the slot map, per-node clients and the
// redirections (MOVED, ASK, TRYAGAIN, CLUSTERDOWN, EXECABORT); see cluster.hpp.
//
// Threading: the io_context's thread only. Replies and timers hold a weak_ptr to Impl: after
// ~ClusterClient a request still pending is answered with what its node said, never retried.
#include "common/redis/cluster.hpp"

#include <algorithm>
#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <chrono>
#include <optional>
#include <unordered_map>

#include "common/log.hpp"
#include "common/redis/redis_connection.hpp"

namespace postwarden::redis {

namespace asio = boost::asio;
using clock = std::chrono::steady_clock;

namespace {

constexpr std::chrono::milliseconds tick_interval{1000};
constexpr std::chrono::seconds refresh_interval{30};
constexpr std::chrono::milliseconds retry_delay{20};
constexpr int max_redirects = 16;        // per request, within its timeout_ms
constexpr int quick_redirects = 3;       // followed at once; later ones after retry_delay
constexpr std::size_t max_nodes = 1024;  // a hostile CLUSTER SLOTS or MOVED cannot grow this more

std::uint16_t crc16(std::string_view data) {
    std::uint16_t crc = 0;
    for (unsigned char c : data) {
        crc ^= static_cast<std::uint16_t>(c << 8);
        for (int bit = 0; bit < 8; ++bit)
            crc = static_cast<std::uint16_t>(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

bool iequals(std::string_view a, std::string_view b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
        return (x >= 'a' && x <= 'z' ? x - 32 : x) == (y >= 'a' && y <= 'z' ? y - 32 : y);
    });
}

bool starts_with(const std::string& text, std::string_view prefix) {
    return text.rfind(prefix, 0) == 0;
}

Reply failure(const std::string& reason) {
    return Reply{false, reason, {}};
}

// "MOVED 3999 127.0.0.1:6381" or "ASK 3999 127.0.0.1:6381".
struct Redirect {
    bool ask = false;
    std::uint16_t slot = 0;
    std::string host;  // empty: the node that answered (Redis 7 may leave its address out)
    unsigned short port = 0;
};

std::optional<Redirect> parse_redirect(const std::string& error) {
    Redirect r;
    std::string_view rest = error;
    if (starts_with(error, "MOVED "))
        rest.remove_prefix(6);
    else if (starts_with(error, "ASK "))
        r.ask = true, rest.remove_prefix(4);
    else
        return std::nullopt;
    auto space = rest.find(' ');
    auto colon = rest.rfind(':');
    if (space == std::string_view::npos || colon == std::string_view::npos || colon < space)
        return std::nullopt;
    unsigned slot = 0, port = 0;
    auto slot_text = rest.substr(0, space), port_text = rest.substr(colon + 1);
    if (std::from_chars(slot_text.data(), slot_text.data() + slot_text.size(), slot).ec !=
            std::errc{} ||
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port).ec !=
            std::errc{} ||
        slot >= cluster_slots || port == 0 || port > 65535)
        return std::nullopt;
    r.slot = static_cast<std::uint16_t>(slot);
    r.port = static_cast<unsigned short>(port);
    r.host = std::string(rest.substr(space + 1, colon - space - 1));
    if (r.host.size() >= 2 && r.host.front() == '[' && r.host.back() == ']')
        r.host = r.host.substr(1, r.host.size() - 2);
    return r;
}

// The argv of the first command of RESP that this process encoded (redis::Batch): trusted input.
std::vector<std::string> first_of(const std::string& resp) {
    std::vector<std::string> argv;
    std::size_t pos = resp.find("\r\n");
    if (resp.empty() || resp[0] != '*' || pos == std::string::npos) return argv;
    std::size_t count = std::stoul(resp.substr(1, pos - 1));
    pos += 2;
    for (std::size_t i = 0; i < count; ++i) {
        auto end = resp.find("\r\n", pos);
        if (end == std::string::npos || resp[pos] != '$') return {};
        std::size_t length = std::stoul(resp.substr(pos + 1, end - pos - 1));
        argv.push_back(resp.substr(end + 2, length));
        pos = end + 2 + length + 2;
    }
    return argv;
}

}  // namespace

std::uint16_t key_slot(std::string_view key) {
    auto open = key.find('{');
    if (open != std::string_view::npos) {
        auto close = key.find('}', open + 1);
        if (close != std::string_view::npos && close != open + 1)
            key = key.substr(open + 1, close - open - 1);
    }
    return static_cast<std::uint16_t>(crc16(key) & (cluster_slots - 1));
}

std::vector<std::string> first_command(const Batch& batch) {
    return first_of(batch.encoded());
}

const std::string* routing_key(const std::vector<std::string>& argv) {
    if (argv.size() < 2) return nullptr;
    const auto& name = argv[0];
    for (const char* eval : {"EVALSHA", "EVAL", "EVALSHA_RO", "EVAL_RO", "FCALL", "FCALL_RO"})
        if (iequals(name, eval)) return argv.size() >= 4 && argv[2] != "0" ? &argv[3] : nullptr;
    static constexpr const char* keyless[] = {
        "PING",   "ECHO",    "CLIENT",  "SCRIPT",   "FUNCTION",  "CLUSTER",   "INFO",    "CONFIG",
        "DEBUG",  "TIME",    "SCAN",    "DBSIZE",   "FLUSHALL",  "FLUSHDB",   "KEYS",    "AUTH",
        "HELLO",  "SELECT",  "MULTI",   "EXEC",     "DISCARD",   "ASKING",    "WAIT",    "COMMAND",
        "MEMORY", "SLOWLOG", "LATENCY", "READONLY", "READWRITE", "SUBSCRIBE", "PUBLISH", "QUIT"};
    for (const char* k : keyless)
        if (iequals(name, k)) return nullptr;
    return &argv[1];
}

class ClusterClient::Impl : public std::enable_shared_from_this<Impl> {
  public:
    Impl(asio::io_context& io, Options options) : io_(io), options_(std::move(options)), tick_(io) {
        slots_.fill(nullptr);
    }

    void start();
    void stop();
    bool connected() const;
    void command(std::vector<std::string> argv, Callback done);
    void eval(const Script& script, std::vector<std::string> keys, std::vector<std::string> args,
              Callback done);
    void transaction(const Batch& commands, Callback done);
    Stats stats() const;
    std::vector<Master> masters() const;
    std::uint64_t topology() const { return topology_; }

  private:
    struct Node {
        Endpoint endpoint;
        std::unique_ptr<Client> client;
    };
    struct Request {
        enum class Kind { command, eval, transaction } kind = Kind::command;
        std::vector<std::string> argv;  // command; for a transaction, its probe (EXISTS key)
        std::optional<Script> script;
        std::vector<std::string> keys, args;
        Batch batch;
        int slot = -1;  // -1: no key, any master
        clock::time_point deadline;
        int redirects = 0;
        Callback done;
    };
    using RequestPtr = std::shared_ptr<Request>;

    RequestPtr make_request(Request::Kind kind, const std::string* key, Callback done) const;
    Node* node(const Endpoint& endpoint);
    Node* route(int slot) const;
    void send(const RequestPtr& request, Node* target, bool asking);
    void on_reply(const RequestPtr& request, Node* from, Reply reply);
    bool redirect(const RequestPtr& request, Node* from, const std::string& error);
    void probe(const RequestPtr& request, Node* from, Reply aborted);
    void retry_later(const RequestPtr& request, Node* target = nullptr, bool asking = false);
    bool may_retry(Request& request) const;

    void node_ready(Node* node);
    void refresh();
    void apply(const Value& slots, Node* from);
    void schedule_tick();
    void tick();
    void problem(const std::string& what);

    asio::io_context& io_;
    const Options options_;
    std::vector<std::unique_ptr<Node>> nodes_;  // stable addresses; never removed while running
    std::unordered_map<std::string, Node*> by_name_;
    std::array<Node*, cluster_slots> slots_;
    std::vector<Node*> masters_;
    bool running_ = false;
    bool loaded_ = false;
    bool refreshing_ = false;
    bool refresh_wanted_ = false;
    clock::time_point last_refresh_{};
    std::uint64_t topology_ = 0;
    std::uint64_t moved_ = 0, asked_ = 0;
    std::string last_problem_;  // logged once; its repeats while retrying every second are not
    asio::steady_timer tick_;
};

ClusterClient::Impl::Node* ClusterClient::Impl::node(const Endpoint& endpoint) {
    auto name = endpoint.to_string();
    if (auto it = by_name_.find(name); it != by_name_.end()) return it->second;
    if (nodes_.size() >= max_nodes) return nullptr;
    auto n = std::make_unique<Node>();
    n->endpoint = endpoint;
    Options o = options_;
    o.address = endpoint;
    o.cluster = false;
    o.seeds.clear();
    o.on_message = nullptr;
    std::weak_ptr<Impl> weak = shared_from_this();
    o.on_ready = [weak, raw = n.get()] {
        if (auto self = weak.lock()) self->node_ready(raw);
    };
    n->client = std::make_unique<Client>(io_, std::move(o));
    if (running_) n->client->start();
    auto* raw = n.get();
    by_name_.emplace(name, raw);
    nodes_.push_back(std::move(n));
    return raw;
}

void ClusterClient::Impl::start() {
    if (running_) return;
    running_ = true;
    auto seeds = options_.seeds.empty() ? std::vector<Endpoint>{options_.address} : options_.seeds;
    for (const auto& seed : seeds)
        node(seed);
    for (auto& n : nodes_)
        n->client->start();
    schedule_tick();
}

void ClusterClient::Impl::stop() {
    running_ = false;
    tick_.cancel();
    for (auto& n : nodes_)
        n->client->stop();
    refreshing_ = false;
}

bool ClusterClient::Impl::connected() const {
    return loaded_ && std::all_of(masters_.begin(), masters_.end(),
                                  [](Node* n) { return n->client->connected(); });
}

Stats ClusterClient::Impl::stats() const {
    Stats sum;
    for (const auto& n : nodes_) {
        auto s = n->client->stats();
        sum.commands += s.commands;
        sum.writes += s.writes;
        sum.timeouts += s.timeouts;
        sum.connects += s.connects;
        sum.disconnects += s.disconnects;
        sum.late_replies += s.late_replies;
    }
    sum.moved = moved_;
    sum.asked = asked_;
    return sum;
}

std::vector<ClusterClient::Master> ClusterClient::Impl::masters() const {
    std::vector<Master> out;
    for (auto* n : masters_)
        out.push_back({n->endpoint, n->client.get()});
    return out;
}

// ---- the slot map ----

// options.on_ready means: a map is loaded and every master it names is connected.
void ClusterClient::Impl::node_ready(Node* n) {
    if (!loaded_) return refresh();
    if (options_.on_ready && connected() &&
        std::find(masters_.begin(), masters_.end(), n) != masters_.end())
        options_.on_ready();
}

// Asks a connected node, masters first, for CLUSTER SLOTS; one request at a time.
void ClusterClient::Impl::refresh() {
    if (!running_) return;
    if (refreshing_) {
        refresh_wanted_ = true;
        return;
    }
    Node* from = nullptr;
    for (auto* n : masters_)
        if (n->client->connected()) from = from ? from : n;
    for (auto& n : nodes_)
        if (!from && n->client->connected()) from = n.get();
    if (!from) return;  // the tick asks again
    refreshing_ = true;
    refresh_wanted_ = false;
    last_refresh_ = clock::now();
    std::weak_ptr<Impl> weak = shared_from_this();
    from->client->command({"CLUSTER", "SLOTS"}, [weak, from](Reply r) {
        auto self = weak.lock();
        if (!self || !self->running_) return;
        self->refreshing_ = false;
        if (!r.ok || r.value.type != Value::Type::array) {
            self->refresh_wanted_ = true;
            self->problem("CLUSTER SLOTS failed at " + from->endpoint.to_string() + ": " +
                          (r.ok ? r.value.str : r.error));
            return;
        }
        self->apply(r.value, from);
    });
}

// [[start, end, [host, port, id, ...], replicas...], ...]: a malformed range is skipped, and a
// map that names more nodes than max_nodes keeps those it could add.
void ClusterClient::Impl::apply(const Value& ranges, Node* from) {
    std::array<Node*, cluster_slots> map;
    map.fill(nullptr);
    std::vector<Node*> masters;
    for (const auto& range : ranges.elements) {
        const auto& e = range.elements;
        if (range.type != Value::Type::array || e.size() < 3 || e[0].type != Value::Type::integer ||
            e[1].type != Value::Type::integer || e[2].type != Value::Type::array ||
            e[2].elements.size() < 2 || e[2].elements[1].type != Value::Type::integer)
            continue;
        long long first = e[0].integer, last = e[1].integer, port = e[2].elements[1].integer;
        if (first < 0 || last >= static_cast<long long>(cluster_slots) || first > last ||
            port <= 0 || port > 65535)
            continue;
        Endpoint endpoint;
        endpoint.host = e[2].elements[0].str;
        if (endpoint.host.empty() || endpoint.host == "?") endpoint.host = from->endpoint.host;
        endpoint.port = static_cast<unsigned short>(port);
        Node* master = node(endpoint);
        if (!master) continue;
        if (std::find(masters.begin(), masters.end(), master) == masters.end())
            masters.push_back(master);
        std::fill(map.begin() + first, map.begin() + last + 1, master);
    }
    if (masters.empty()) {
        refresh_wanted_ = true;
        problem(from->endpoint.to_string() + " knows no slots yet");
        return;
    }
    slots_ = map;
    last_problem_.clear();
    bool changed = !loaded_ || masters != masters_;
    masters_ = std::move(masters);
    loaded_ = true;
    if (!changed) return;
    ++topology_;
    std::string names;
    for (auto* m : masters_)
        names += (names.empty() ? "" : ", ") + m->endpoint.to_string();
    auto covered = std::count_if(map.begin(), map.end(), [](Node* n) { return n != nullptr; });
    log::info("redis cluster: " + std::to_string(masters_.size()) + " masters (" + names + "), " +
              std::to_string(covered) + " of 16384 slots served");
    if (options_.on_ready && connected()) options_.on_ready();  // else when the last connects
}

void ClusterClient::Impl::problem(const std::string& what) {
    if (what == last_problem_) return;
    last_problem_ = what;
    log::warning("redis cluster: " + what);
}

void ClusterClient::Impl::schedule_tick() {
    tick_.expires_after(tick_interval);
    std::weak_ptr<Impl> weak = shared_from_this();
    tick_.async_wait([weak](const boost::system::error_code& error) {
        if (auto self = weak.lock(); self && !error) self->tick();
    });
}

// Learns the map again when asked to (MOVED), when a master is unreachable (it may have been
// replaced by a replica), and every refresh_interval.
void ClusterClient::Impl::tick() {
    if (!running_) return;
    bool lost = std::any_of(masters_.begin(), masters_.end(),
                            [](Node* n) { return !n->client->connected(); });
    if (!loaded_ || refresh_wanted_ || lost || clock::now() - last_refresh_ >= refresh_interval)
        refresh();
    schedule_tick();
}

// ---- requests ----

ClusterClient::Impl::RequestPtr ClusterClient::Impl::make_request(Request::Kind kind,
                                                                  const std::string* key,
                                                                  Callback done) const {
    auto r = std::make_shared<Request>();
    r->kind = kind;
    r->slot = key ? key_slot(*key) : -1;
    r->deadline = clock::now() + std::chrono::milliseconds(options_.timeout_ms);
    r->done = std::move(done);
    return r;
}

ClusterClient::Impl::Node* ClusterClient::Impl::route(int slot) const {
    if (slot >= 0) return slots_[static_cast<std::size_t>(slot)];
    for (auto* n : masters_)
        if (n->client->connected()) return n;
    return masters_.empty() ? nullptr : masters_.front();
}

void ClusterClient::Impl::command(std::vector<std::string> argv, Callback done) {
    auto r = make_request(Request::Kind::command, routing_key(argv), std::move(done));
    r->argv = std::move(argv);
    send(r, nullptr, false);
}

void ClusterClient::Impl::eval(const Script& script, std::vector<std::string> keys,
                               std::vector<std::string> args, Callback done) {
    auto r = make_request(Request::Kind::eval, keys.empty() ? nullptr : &keys[0], std::move(done));
    r->script = script;
    r->keys = std::move(keys);
    r->args = std::move(args);
    send(r, nullptr, false);
}

void ClusterClient::Impl::transaction(const Batch& commands, Callback done) {
    auto first = first_command(commands);
    const std::string* key = routing_key(first);
    auto r = make_request(Request::Kind::transaction, key, std::move(done));
    if (key) r->argv = {"EXISTS", *key};
    r->batch = commands;
    send(r, nullptr, false);
}

void ClusterClient::Impl::send(const RequestPtr& request, Node* target, bool asking) {
    if (!target) target = route(request->slot);
    if (!target) {
        refresh_wanted_ = true;
        count_failure(options_, Failure::not_connected);
        return post_reply(io_, std::move(request->done),
                          failure(loaded_ ? "no master serves slot " + std::to_string(request->slot)
                                          : "not connected"));
    }
    Client& client = *target->client;
    if (asking) client.command({"ASKING"}, nullptr);
    std::weak_ptr<Impl> weak = shared_from_this();
    auto on_reply = [weak, request, target](Reply reply) {
        if (auto self = weak.lock()) return self->on_reply(request, target, std::move(reply));
        request->done(std::move(reply));
    };
    switch (request->kind) {
        case Request::Kind::command:
            return client.command(request->argv, std::move(on_reply));
        case Request::Kind::eval:
            if (asking) {
                // ASKING admits one command only: EVALSHA's NOSCRIPT would use it up and the
                // EVAL that follows be sent back with MOVED, again and again on a node that has
                // never run the script (one just added). EVAL runs it, and caches it there.
                std::vector<std::string> argv{"EVAL", request->script->text(),
                                              std::to_string(request->keys.size())};
                argv.insert(argv.end(), request->keys.begin(), request->keys.end());
                argv.insert(argv.end(), request->args.begin(), request->args.end());
                return client.command(std::move(argv), std::move(on_reply));
            }
            return client.eval(*request->script, request->keys, request->args, std::move(on_reply));
        case Request::Kind::transaction:
            return client.transaction(request->batch, std::move(on_reply));
    }
}

bool ClusterClient::Impl::may_retry(Request& request) const {
    return running_ && ++request.redirects <= max_redirects && clock::now() < request.deadline;
}

void ClusterClient::Impl::on_reply(const RequestPtr& request, Node* from, Reply reply) {
    if (!reply.ok) {
        if (reply.error != "not connected") return request->done(std::move(reply));
        refresh_wanted_ = true;
        // Refused before anything was sent. A node a redirection named may be one never used
        // before (a replica that took over), still connecting: waited for, within the request's
        // deadline. Without a redirection the map's own master is down: answered at once.
        if (request->redirects > 0 && may_retry(*request)) return retry_later(request);
        return request->done(std::move(reply));
    }
    if (reply.value.is_error()) {
        const auto& error = reply.value.str;
        if (redirect(request, from, error)) return;
        if ((starts_with(error, "TRYAGAIN") || starts_with(error, "CLUSTERDOWN")) &&
            may_retry(*request))
            return retry_later(request);
        if (request->kind == Request::Kind::transaction && starts_with(error, "EXECABORT") &&
            !request->argv.empty() && may_retry(*request))
            return probe(request, from, std::move(reply));
    }
    request->done(std::move(reply));
}

// MOVED: the slot has a new owner, for good: remember it (and learn the whole map again soon).
// ASK: this one command goes to the node named, after ASKING; the map stays.
bool ClusterClient::Impl::redirect(const RequestPtr& request, Node* from,
                                   const std::string& error) {
    auto r = parse_redirect(error);
    if (!r || !may_retry(*request)) return false;
    Endpoint endpoint;
    endpoint.host = r->host.empty() ? from->endpoint.host : r->host;
    endpoint.port = r->port;
    Node* target = node(endpoint);
    if (!target) return false;
    if (r->ask) {
        ++asked_;
    } else {
        ++moved_;
        slots_[r->slot] = target;
        refresh_wanted_ = true;
    }
    // Nodes may disagree for a moment while a slot's new owner is announced (one still says
    // MOVED to the other): after a few redirections, each next one waits retry_delay.
    if (request->redirects > quick_redirects)
        retry_later(request, target, r->ask);
    else
        send(request, target, r->ask);
    return true;
}

// A transaction Redis aborted ran nothing. Whether its slot moved or is moving is asked with
// EXISTS on its first key: a redirection sends it there; otherwise it is tried again shortly
// (TRYAGAIN while queueing), until its deadline, after which the caller gets the abort.
void ClusterClient::Impl::probe(const RequestPtr& request, Node* from, Reply aborted) {
    std::weak_ptr<Impl> weak = shared_from_this();
    auto aborted_ptr = std::make_shared<Reply>(std::move(aborted));
    from->client->command(request->argv, [weak, request, from, aborted_ptr](Reply r) {
        auto self = weak.lock();
        if (!self || !r.ok) return request->done(std::move(*aborted_ptr));
        if (r.value.is_error() && self->redirect(request, from, r.value.str)) return;
        if (self->may_retry(*request)) return self->retry_later(request);
        request->done(std::move(*aborted_ptr));
    });
}

// target null: the slot's owner in the map by then.
void ClusterClient::Impl::retry_later(const RequestPtr& request, Node* target, bool asking) {
    auto timer = std::make_shared<asio::steady_timer>(io_, retry_delay);
    std::weak_ptr<Impl> weak = shared_from_this();
    timer->async_wait([weak, request, timer, target, asking](const boost::system::error_code&) {
        auto self = weak.lock();
        if (!self || !self->running_) return request->done(failure("stopped"));
        self->send(request, target, asking);
    });
}

// ---- ClusterClient ----

std::unique_ptr<Forward> make_cluster_client(asio::io_context& io, Options options) {
    return std::make_unique<ClusterClient>(io, std::move(options));
}

ClusterClient* Client::cluster() const {
    return static_cast<ClusterClient*>(cluster_.get());
}

ClusterClient::ClusterClient(asio::io_context& io, Options options)
    : impl_(std::make_shared<Impl>(io, std::move(options))) {}

ClusterClient::~ClusterClient() {
    impl_->stop();
}

void ClusterClient::start() {
    impl_->start();
}
void ClusterClient::stop() {
    impl_->stop();
}
bool ClusterClient::connected() const {
    return impl_->connected();
}
Stats ClusterClient::stats() const {
    return impl_->stats();
}
std::vector<ClusterClient::Master> ClusterClient::masters() const {
    return impl_->masters();
}
std::uint64_t ClusterClient::topology() const {
    return impl_->topology();
}
void ClusterClient::command(std::vector<std::string> argv, Callback done) {
    impl_->command(std::move(argv), std::move(done));
}
void ClusterClient::eval(const Script& script, std::vector<std::string> keys,
                         std::vector<std::string> args, Callback done) {
    impl_->eval(script, std::move(keys), std::move(args), std::move(done));
}
void ClusterClient::transaction(const Batch& commands, Callback done) {
    impl_->transaction(commands, std::move(done));
}

}  // namespace postwarden::redis
