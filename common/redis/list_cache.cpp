// list_cache.cpp — see list_cache.hpp for the protocol with Redis and why it stays exact.
#include "common/redis/list_cache.hpp"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>

#include "common/log.hpp"
#include "common/redis/cluster.hpp"

namespace postwarden {

namespace {

// SMISMEMBER's reply as booleans; false when it is not an array of `expected` integers.
bool membership(const redis::Value& v, std::size_t expected, std::vector<bool>* out) {
    if (v.type != redis::Value::Type::array || v.elements.size() != expected) return false;
    out->clear();
    for (const auto& e : v.elements) {
        if (e.type != redis::Value::Type::integer) return false;
        out->push_back(e.integer != 0);
    }
    return true;
}

void not_a_set(const std::string& key, const redis::Value& v) {
    // An operator wrote something else than a SET under a list's name: the list is ignored and
    // said so, rather than failing every request.
    log::warning("list " + key + " is not a set: " + v.str);
}

}  // namespace

// A set being read page by page. changed: Redis said the key changed (or a FLUSH) since the
// load started, so the pages read so far may be wrong: it starts again.
struct ListCache::Load {
    Set set;
    std::size_t bytes = 0;  // estimated, as the budget counts them
    bool changed = false;
    int restarts = 0;
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
    // The request that started the load: a set of one page (most are) answers it itself;
    // otherwise it asks Redis (SMISMEMBER) once the first page shows the set is large, or when
    // the load fails or starts again.
    std::vector<LoadWaiter> waiters;
};

// ok=false: Redis did not answer the load; set null: ask Redis for the members instead.
void ListCache::release(Load& load, bool ok, Set* set) {
    auto waiters = std::move(load.waiters);
    load.waiters.clear();
    for (auto& waiter : waiters)
        waiter(ok, set);
}

namespace {
// What a member costs in memory: the node of the hash set (next pointer, cached hash, the
// string) with malloc's rounding, its bucket, and the heap bytes of a string beyond SSO.
std::size_t member_bytes(const std::string& member) {
    return 72 + (member.size() > 15 ? member.size() + 1 : 0);
}
constexpr int max_restarts = 3;           // a set edited faster than it can be read stays uncached
constexpr std::size_t large_set = 10000;  // loads of this many members are logged
}  // namespace

ListCache::ListCache(boost::asio::io_context& io, redis::Client& data,
                     const redis::Options& options, std::string prefix, ListCacheSettings settings)
    : io_(io),
      data_(data),
      settings_(settings),
      options_(options),
      prefix_(std::move(prefix)),
      keepalive_(io),
      sets_(settings.max_bytes - settings.max_bytes / 16),
      values_(settings.max_bytes / 16) {
    if (!data_.cluster()) add_tracker(&data_, options.address);  // a cluster's: follow_masters()
}

ListCache::~ListCache() {
    stop();
}

std::shared_ptr<ListCache::Tracker> ListCache::add_tracker(redis::Client* data,
                                                           const Endpoint& address) {
    auto t = std::make_shared<Tracker>();
    t->data = data;
    redis::Options sub = options_;
    sub.address = address;
    sub.cluster = false;
    sub.seeds.clear();
    sub.on_ready = [this, weak = std::weak_ptr<Tracker>(t)] {
        if (auto t = weak.lock()) subscriber_ready(t);
    };
    sub.on_message = [this](const redis::Value& v) { on_invalidate(v); };
    t->subscriber = std::make_unique<redis::Client>(io_, sub);
    if (running_) t->subscriber->start();
    trackers_.push_back(t);
    return t;
}

// On a cluster, one tracker per master of the current slot map: built again whenever the
// masters change (which drops what is cached).
void ListCache::follow_masters() {
    auto* cluster = data_.cluster();
    if (!cluster || (cluster->topology() == topology_ && !trackers_.empty())) return;
    topology_ = cluster->topology();
    reset("the cluster's masters changed");
    for (auto& t : trackers_)
        t->subscriber->stop();
    trackers_.clear();
    for (const auto& m : cluster->masters())
        add_tracker(m.client, m.endpoint);
}

void ListCache::start() {
    running_ = true;
    follow_masters();
    for (auto& t : trackers_)
        t->subscriber->start();
    schedule_tick();
}

void ListCache::stop() {
    running_ = false;
    keepalive_.cancel();
    for (auto& t : trackers_)
        t->subscriber->stop();
    reset(nullptr);
}

void ListCache::reset(const char* why) {
    if (tracking_ && why) log::notice(std::string("list cache off until tracking is back: ") + why);
    tracking_ = false;
    for (auto& t : trackers_)
        t->on = false;
    ++epoch_;
    if (sets_.size() > 0 || values_.size() > 0) ++stats_.resets;
    sets_.clear();
    values_.clear();
    auto loads = std::move(loading_);  // their pages are ignored when they come back
    loading_.clear();
    for (auto& [key, load] : loads)
        release(*load, true, nullptr);
}

void ListCache::schedule_tick() {
    keepalive_.expires_after(settings_.keepalive);
    keepalive_.async_wait([this](const boost::system::error_code& error) {
        if (!error) tick();  // cancelled by stop() or ~ListCache: this may be gone
    });
}

// A subscriber only ever receives: without a request of its own, a link that went silent (a
// half-open connection, a frozen middlebox) looks just like a quiet one, and the cache would go
// on trusting invalidations that can no longer arrive. A PING (answered ["pong", ""] in
// subscribed mode) must come back within timeout_ms; if not, the cache is dropped and the
// subscriber reconnected, which sets tracking up again. A CLIENT TRACKING that failed or timed
// out is retried here too.
void ListCache::tick() {
    if (!running_) return;
    follow_masters();
    for (auto& t : trackers_)
        ping(t);
    enable_tracking();
    schedule_tick();
}

void ListCache::ping(const std::shared_ptr<Tracker>& t) {
    if (!t->subscriber->connected() || t->ping_in_flight) return;
    t->ping_in_flight = true;
    t->subscriber->command(
        {"PING"}, [this, alive = std::weak_ptr<char>(alive_), weak = std::weak_ptr<Tracker>(t),
                   epoch = epoch_](redis::Reply r) {
            auto t = weak.lock();
            if (alive.expired() || !t) return;  // answered "stopped" after ~ListCache or a rebuild
            t->ping_in_flight = false;
            if (r.ok || r.error != "timeout" || !running_) return;
            ++stats_.pings_missed;
            if (epoch == epoch_) reset("the subscriber did not answer PING in time");
            t->subscriber->stop();
            t->subscriber->start();
        });
}

// Each subscriber subscribes on each of its connections; the reset drops what the other nodes'
// tracking had cached too, and enable_tracking() sets every tracker up again.
void ListCache::subscriber_ready(const std::shared_ptr<Tracker>& t) {
    reset("subscriber reconnected");
    t->id.clear();
    auto connection = ++t->connection;
    auto id = std::make_shared<std::string>();
    t->subscriber->command({"CLIENT", "ID"}, [id](redis::Reply r) {
        if (r.ok && r.value.type == redis::Value::Type::integer)
            *id = std::to_string(r.value.integer);
    });
    t->subscriber->command(
        {"SUBSCRIBE", "__redis__:invalidate"},
        [this, weak = std::weak_ptr<Tracker>(t), id, connection](redis::Reply r) {
            auto t = weak.lock();
            if (!t || connection != t->connection || !r.ok || r.value.is_error() || id->empty())
                return;
            t->id = *id;
            enable_tracking();
        });
}

void ListCache::data_connection_ready() {
    follow_masters();
    reset("data connection renewed");
    enable_tracking();
}

void ListCache::enable_tracking() {
    for (auto& t : trackers_)
        if (!t->on && t->asked != epoch_ + 1) enable_tracking(t);
}

void ListCache::enable_tracking(const std::shared_ptr<Tracker>& t) {
    if (t->id.empty() || !t->subscriber->connected() || !t->data->connected()) return;
    // Through Sentinels the two connections find the master each on its own: during a failover
    // one may still be on the old one, where the subscriber's id names another client or none.
    // The later of the two to move renews tracking (or the next tick does).
    auto data_master = t->data->master(), subscriber_master = t->subscriber->master();
    if (data_master && subscriber_master &&
        data_master->to_string() != subscriber_master->to_string())
        return;
    auto epoch = epoch_;
    t->asked = epoch + 1;
    t->data->command({"CLIENT", "TRACKING", "off"}, [](redis::Reply) {});
    std::vector<std::string> argv{"CLIENT", "TRACKING", "on", "REDIRECT", t->id, "BCAST"};
    for (const auto& tracked : settings_.tracked) {
        argv.push_back("PREFIX");
        argv.push_back(prefix_ + tracked);
    }
    t->data->command(
        std::move(argv), [this, weak = std::weak_ptr<Tracker>(t), epoch](redis::Reply r) {
            auto t = weak.lock();
            if (!t || epoch != epoch_) return;
            t->asked = 0;  // the next tick asks again unless this turned it on
            if (!r.ok || r.value.is_error()) {
                log::warning("CLIENT TRACKING refused (" + (r.ok ? r.value.str : r.error) +
                             "): lists are read from Redis on every request until it is accepted");
                return;
            }
            t->on = true;
            tracking_ = std::all_of(trackers_.begin(), trackers_.end(),
                                    [](const auto& each) { return each->on; });
            if (tracking_) log::info("list cache on: Redis reports every change to the lists");
        });
}

void ListCache::on_invalidate(const redis::Value& message) {
    ++invalidations_;
    ++stats_.invalidations;
    const auto& keys = message.elements[2];
    if (keys.type != redis::Value::Type::array) {  // FLUSHDB/FLUSHALL: everything changed
        sets_.clear();
        values_.clear();
        for (auto& [key, load] : loading_)
            load->changed = true;
        return;
    }
    for (const auto& k : keys.elements) {
        sets_.erase(k.str);
        values_.erase(k.str);
        if (auto it = loading_.find(k.str); it != loading_.end()) it->second->changed = true;
    }
}

// Every node's two connections must be up for Redis to deliver invalidations: otherwise forget
// everything.
bool ListCache::usable() {
    if (tracking_)
        for (const auto& t : trackers_)
            if (!t->data->connected() || !t->subscriber->connected()) {
                reset("connection lost");
                break;
            }
    return tracking_;
}

void ListCache::lookup(const std::vector<Query>& queries, Done done) {
    std::vector<std::vector<bool>> hits(queries.size());
    std::vector<std::size_t> missing;
    bool cached = usable();
    for (std::size_t i = 0; i < queries.size(); ++i) {
        Set* set = cached ? sets_.find(queries[i].key) : nullptr;
        if (set == nullptr || set->oversize) {
            missing.push_back(i);
            continue;
        }
        answer(*set, queries[i], &hits[i]);
    }
    if (missing.empty()) {
        ++stats_.hits;
        boost::asio::post(io_, [done = std::move(done), hits = std::move(hits)]() mutable {
            done(true, std::move(hits));
        });
        return;
    }
    fetch(queries, std::move(missing), std::move(hits), std::move(done));
}

void ListCache::get(const std::string& key, GetDone done) {
    if (usable()) {
        if (auto* value = values_.find(key)) {
            ++stats_.hits;
            boost::asio::post(io_, [done = std::move(done), value = *value] { done(true, value); });
            return;
        }
    }
    bool keep = tracking_;
    if (keep) ++stats_.loads;
    data_.command({"GET", key}, [this, key, keep, done = std::move(done), epoch = epoch_,
                                 seen = invalidations_](redis::Reply r) {
        if (!r.ok) return done(false, r.value);
        // Kept only if nothing could have changed it since it was asked for.
        if (keep && epoch == epoch_ && seen == invalidations_ && tracking_)
            values_.put(key, r.value, r.value.str.size());
        done(true, r.value);
    });
}

void ListCache::members(const std::string& key, MembersDone done) {
    auto all = [](const Set& set) {
        return std::vector<std::string>(set.members.begin(), set.members.end());
    };
    if (usable()) {
        if (Set* set = sets_.find(key); set && !set->oversize) {
            ++stats_.hits;
            boost::asio::post(io_, [done = std::move(done), m = all(*set)]() mutable {
                done(true, std::move(m));
            });
            return;
        }
    }
    auto ask = [this, key](MembersDone done) {
        data_.command({"SMEMBERS", key}, [done = std::move(done)](redis::Reply r) {
            if (!r.ok) return done(false, {});
            std::vector<std::string> m;
            if (r.value.type == redis::Value::Type::array)
                for (const auto& e : r.value.elements)
                    m.push_back(e.str);
            done(true, std::move(m));
        });
    };
    auto shared = std::make_shared<MembersDone>(std::move(done));
    auto from_load = [ask, all, shared](bool ok, Set* set) {
        if (!ok) return (*shared)(false, {});
        if (set == nullptr) return ask(std::move(*shared));
        (*shared)(true, all(*set));
    };
    if (!tracking_ || !wait_for_load(key, std::move(from_load))) ask(std::move(*shared));
}

void ListCache::answer(Set& set, const Query& query, std::vector<bool>* hits) {
    // Most sets are empty, the per-domain ones above all: no member is in them, said with no
    // flags at all (a missing flag is "not a member", lists.hpp).
    if (set.members.empty()) return hits->clear();
    if (!query.client) {
        hits->assign(query.members.size(), false);
        for (std::size_t j = 0; j < query.members.size(); ++j)
            (*hits)[j] = set.members.count(query.members[j]) > 0;
        return;
    }
    const auto& client = *query.client;
    hits->assign(network_candidate_count(client), false);
    if (!set.indexed) {
        // A member equal to a candidate spelling parses as that network, so the lengths found
        // here are all a lookup needs to ask for; anything unparsable can match no candidate.
        std::string ignored;
        for (const auto& m : set.members)
            if (auto cidr = parse_cidr(m, &ignored))
                (cidr->network.v6 ? set.v6 : set.v4).set(static_cast<std::size_t>(cidr->prefix));
        set.indexed = true;
    }
    const auto& lengths = client.v6 ? set.v6 : set.v4;
    const int bits = client.bits();
    for (int len = bits; len >= 0; --len) {
        if (!lengths.test(static_cast<std::size_t>(len))) continue;
        std::size_t j = 1 + static_cast<std::size_t>(bits - len);
        (*hits)[j] = set.members.count(network_candidate(client, j)) > 0;
        if (len == bits) (*hits)[0] = set.members.count(network_candidate(client, 0)) > 0;
    }
}

struct ListCache::Batch {
    std::vector<std::vector<bool>> hits;
    std::size_t outstanding;
    bool failed = false;
    Done done;

    void finish() {
        if (--outstanding == 0) done(!failed, std::move(hits));
    }
};

// What is missing: while tracking, from the load of its set when this starts one; otherwise
// just the members asked for (SMISMEMBER). All the commands go out in one batch.
void ListCache::fetch(const std::vector<Query>& queries, std::vector<std::size_t> missing,
                      std::vector<std::vector<bool>> hits, Done done) {
    auto batch =
        std::make_shared<Batch>(Batch{std::move(hits), missing.size(), false, std::move(done)});
    for (auto i : missing) {
        auto from_load = [this, batch, i, query = queries[i]](bool ok, Set* set) {
            if (!ok) {
                batch->failed = true;
                return batch->finish();
            }
            if (set == nullptr) return ask(batch, i, query);
            answer(*set, query, &batch->hits[i]);
            batch->finish();
        };
        if (!tracking_ || !wait_for_load(queries[i].key, std::move(from_load)))
            ask(batch, i, queries[i]);
    }
}

void ListCache::ask(const std::shared_ptr<Batch>& batch, std::size_t i, const Query& query) {
    std::string key(query.key);
    std::vector<std::string> argv{"SMISMEMBER", key};
    if (query.client) {
        auto spelled = network_candidates(*query.client);
        argv.insert(argv.end(), spelled.begin(), spelled.end());
    } else {
        argv.insert(argv.end(), query.members.begin(), query.members.end());
    }
    const std::size_t n = argv.size() - 2;
    data_.command(std::move(argv), [batch, i, key, n](redis::Reply r) {
        if (!r.ok)
            batch->failed = true;
        else if (!membership(r.value, n, &batch->hits[i]))
            not_a_set(key, r.value);
        batch->finish();
    });
}

// One load per key: a miss starts the load of its set when there is none, and waits for its
// first page; false: ask Redis instead. A miss never joins a load already under way: that load's
// commands were sent before this request arrived, and an edit made in between must count for it
// (its invalidation may be read only after the page). The set is then being loaded, too large
// for the budget, or too many sets are loading.
bool ListCache::wait_for_load(std::string_view key, LoadWaiter waiter) {
    if (loading_.find(key) != loading_.end()) {
        ++stats_.merged;
        return false;
    }
    if (auto* set = sets_.find(key); set && set->oversize) return false;
    if (loading_.size() >= settings_.max_loads) return false;
    ++stats_.loads;
    auto state = std::make_shared<Load>();
    state->waiters.push_back(std::move(waiter));
    auto [it, inserted] = loading_.emplace(std::string(key), state);
    scan(it->first, state, "0");
    return true;
}

void ListCache::scan(const std::string& key, const std::shared_ptr<Load>& load,
                     const std::string& cursor) {
    data_.command({"SSCAN", key, cursor, "COUNT", std::to_string(settings_.scan_count)},
                  [this, alive = std::weak_ptr<char>(alive_), key, load](redis::Reply r) {
                      if (!alive.expired()) on_page(key, load, std::move(r));
                  });
}

// SSCAN returns every member present from the first page to the last (some perhaps twice);
// a member added or removed meanwhile changes the key, and the load starts again.
void ListCache::on_page(const std::string& key, const std::shared_ptr<Load>& load, redis::Reply r) {
    auto it = loading_.find(key);
    if (it == loading_.end() || it->second != load) return;  // dropped by a reset
    if (!r.ok) {                                             // the next miss tries again
        release(*load, false, nullptr);
        return void(loading_.erase(it));
    }
    if (load->changed) {  // what was read may be stale; whoever waits asks Redis afresh
        release(*load, true, nullptr);
        if (++load->restarts > max_restarts) return void(loading_.erase(it));
        const int restarts = load->restarts;
        *load = Load{};
        load->restarts = restarts;
        return scan(key, load, "0");
    }
    const auto& v = r.value;
    std::string cursor = "0";
    if (v.type == redis::Value::Type::array && v.elements.size() == 2 &&
        v.elements[1].type == redis::Value::Type::array) {
        cursor = v.elements[0].str;
        for (const auto& e : v.elements[1].elements)
            if (load->set.members.insert(e.str).second) load->bytes += member_bytes(e.str);
    } else {
        not_a_set(key, v);  // kept as empty, so the error is not logged on every request
        load->set = Set{};
        load->bytes = 0;
    }
    if (load->bytes > sets_.max_bytes()) {  // beyond the whole budget: its lookups go to Redis
        ++stats_.oversize;
        Set marker;
        marker.oversize = true;
        sets_.put(key, std::move(marker));
        log::warning("list " + key + " is larger than the list cache (" +
                     std::to_string(sets_.max_bytes()) + " bytes): it is asked from Redis");
        release(*load, true, nullptr);
        return void(loading_.erase(it));
    }
    // Loads in progress are outside sets_: together they may hold at most its budget again, or
    // a few large sets loading at once would hold many budgets. This one gives up (its misses,
    // and later ones, ask Redis; a later miss tries to load it again).
    std::size_t loading = 0;
    for (const auto& [k, other] : loading_)
        loading += other->bytes;
    stats_.peak_loading_bytes = std::max(stats_.peak_loading_bytes, loading);
    if (loading > sets_.max_bytes()) {
        ++stats_.loads_abandoned;
        release(*load, true, nullptr);
        return void(loading_.erase(it));
    }
    if (cursor != "0") {
        release(*load, true, nullptr);  // a large set: its first misses ask Redis meanwhile
        return scan(key, load, cursor);
    }
    release(*load, true, &load->set);
    if (load->set.members.size() >= large_set) {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - load->started)
                      .count();
        log::info("list " + key + " cached: " + std::to_string(load->set.members.size()) +
                  " members, about " + std::to_string(load->bytes >> 20) + " MiB, read in " +
                  std::to_string(ms) + " ms");
    }
    if (tracking_) sets_.put(key, std::move(load->set), load->bytes);
    loading_.erase(it);
}

}  // namespace postwarden
