// list_cache.hpp — the operator's list SETs (<prefix>block:*, <prefix>allow:*) and per-user
// quota overrides (<prefix>quota:limits:<login>) answered from memory, kept exact by Redis'
// client-side caching in broadcast mode: Redis tells us about every change to a key under those
// prefixes, so an edit with redis-cli still takes effect on the next request while a request
// costs no list commands (and a quota request no GET) at all.
//
// How: a subscriber connection gets its CLIENT ID and SUBSCRIBEs to __redis__:invalidate; the
// daemon's data connection then turns on "CLIENT TRACKING on REDIRECT <id> BCAST PREFIX
// <prefix>block: PREFIX <prefix>allow: PREFIX <prefix>quota:limits:" (a refusal or a timeout is
// retried every keepalive tick). An override is loaded with GET when first asked for. A set is
// loaded SSCAN page by page, one load per key however many requests miss it meanwhile: the
// request that starts it waits for the first page (all of a small set), the others, and all of
// them for a set of several pages, are answered with SMISMEMBER while the load goes on. A set of
// 10^6 members costs Redis small commands within the per-command timeout, never one huge reply
// that holds up every request behind it. Entries are dropped when Redis says they changed (or on a
// FLUSH; a load that sees its key change starts again). Whenever either connection is lost or
// renewed, or the subscriber leaves a PING unanswered for timeout_ms (a half-open link would
// otherwise keep a stale cache trusted forever), everything cached is dropped and tracking is set
// up again; until it is, lookups go to Redis (one SMISMEMBER per set, one GET per override), so the
// answer is never older than the last invalidation Redis could deliver, or than one keepalive
// interval plus timeout_ms after the subscriber's link went silent.
//
// Memory: bounded in bytes (ListCacheSettings::max_bytes), least recently used entries evicted
// first; a set larger than the whole budget is not kept (its lookups go to Redis), and the sets
// being loaded hold at most the budget again together (a load past it gives up). Each key is read
// with single-key commands, so this works key by key on Redis Cluster too. There tracking is per
// node: each master gets its own subscriber, and the cluster client's connection to that master
// carries the CLIENT TRACKING that redirects to it, so every master reports changes to the keys
// it holds; the cache is on only while every master's tracking is, and the set of subscribers
// follows the masters the slot map names. The quota counters (<prefix>quota:{<login>}:*) are
// outside the tracked prefixes: their writes cost no invalidation traffic.
//
// Entry points: start, stop, lookup, get, data_connection_ready. Threading: the io_context's
// thread.
#pragma once

#include <bitset>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/byte_lru.hpp"
#include "common/inet.hpp"
#include "common/redis/redis.hpp"

namespace postwarden {

struct ListCacheSettings {
    // What the cached sets and overrides may take in memory, estimated from their members; a
    // sixteenth of it for the overrides.
    std::size_t max_bytes = std::size_t{256} << 20;
    // How often the subscriber is PINGed (and a failed CLIENT TRACKING retried).
    std::chrono::milliseconds keepalive{1000};
    std::size_t scan_count = 10000;  // SSCAN COUNT of a load: each page a small command
    std::size_t max_loads = 64;      // sets loading at once; beyond, misses only ask Redis
    // The key prefixes tracked, under [redis] prefix. Only keys under them may be looked up
    // through the cache. The milter's DKIM selector cache tracks "dkim:selectors:" alone.
    std::vector<std::string> tracked = {"block:", "allow:", "quota:limits:"};
};

class ListCache {
  public:
    // Is any of `members` in the set `key`? For a net query `client` is set and `members` is
    // ignored: the candidates are network_candidates(*client) (inet.hpp), and a cached set is
    // asked only for the prefix lengths it holds, so a lookup spells two or three of them, not
    // 34 (v4) or 130 (v6).
    struct Query {
        std::string_view key;
        std::span<const std::string_view> members;
        const IpAddress* client = nullptr;
    };
    // ok=false: Redis could not answer (answer per fail_mode). hits[i][j]: members[j] of query i;
    // hits[i] may be shorter than the members (empty for an empty set): the rest are not in it.
    using Done = std::function<void(bool ok, std::vector<std::vector<bool>> hits)>;

    // `data` is the daemon's client; its Options::on_ready must call data_connection_ready().
    ListCache(boost::asio::io_context& io, redis::Client& data, const redis::Options& options,
              std::string prefix, ListCacheSettings settings = {});
    ~ListCache();

    void start();
    void stop();
    void data_connection_ready();

    // Answers on the io thread, never inside the call. From memory the answer is posted, not
    // given at once: an invalidation Redis sent before the request arrived is then always
    // handled first (its read completed in the same or an earlier turn of the loop), so an edit
    // acknowledged to redis-cli is seen by every request that arrives after it.
    // What the queries point to (keys, members, client) must stay alive until done runs; the
    // queries themselves are copied where they are needed later.
    void lookup(const std::vector<Query>& queries, Done done);

    // The GET reply for `key` (nil, a string, or the WRONGTYPE error of a key of another type),
    // from memory while tracking, answered like lookup(); ok=false: Redis could not answer.
    // For keys under <prefix>quota:limits: only: no other string key is tracked.
    using GetDone = std::function<void(bool ok, const redis::Value& value)>;
    void get(const std::string& key, GetDone done);

    // Every member of the set `key` (ok=false: Redis could not answer; a key of another type
    // has none), from memory while tracking, answered like lookup().
    using MembersDone = std::function<void(bool ok, std::vector<std::string> members)>;
    void members(const std::string& key, MembersDone done);

    bool tracking() const { return tracking_; }
    // loads: started; merged: misses that found their set already loading (they ask Redis);
    // oversize: loads given up because the set would not fit in the budget; pings_missed:
    // keepalives that timed out (each drops the cache and reconnects the subscriber).
    struct Stats {
        std::uint64_t hits = 0, loads = 0, merged = 0, oversize = 0, invalidations = 0, resets = 0,
                      pings_missed = 0, loads_abandoned = 0;
        std::size_t peak_loading_bytes = 0;  // the most the loads in progress held together
    };
    const Stats& stats() const { return stats_; }
    std::size_t bytes() const { return sets_.bytes() + values_.bytes(); }  // estimated

  private:
    struct Load;

    // One per Redis node (the one Redis, or each master of a cluster): a subscriber to
    // __redis__:invalidate on that node and the data connection to it whose tracking redirects
    // there.
    struct Tracker {
        std::unique_ptr<redis::Client> subscriber;
        redis::Client* data = nullptr;
        std::string id;           // the subscriber's CLIENT ID, once subscribed
        bool on = false;          // CLIENT TRACKING accepted in this epoch
        std::uint64_t asked = 0;  // epoch_ + 1 while CLIENT TRACKING is awaited for it
        bool ping_in_flight = false;
        std::uint64_t connection = 0;  // the subscriber's connections so far
    };
    std::shared_ptr<Tracker> add_tracker(redis::Client* data, const Endpoint& address);
    void follow_masters();
    void subscriber_ready(const std::shared_ptr<Tracker>& tracker);
    void enable_tracking();
    void enable_tracking(const std::shared_ptr<Tracker>& tracker);
    void ping(const std::shared_ptr<Tracker>& tracker);
    void reset(const char* why);
    void on_invalidate(const redis::Value& message);
    bool usable();
    struct Batch;
    void fetch(const std::vector<Query>& queries, std::vector<std::size_t> missing,
               std::vector<std::vector<bool>> hits, Done done);
    void ask(const std::shared_ptr<Batch>& batch, std::size_t i, const Query& query);
    void scan(const std::string& key, const std::shared_ptr<Load>& load, const std::string& cursor);
    void on_page(const std::string& key, const std::shared_ptr<Load>& load, redis::Reply reply);
    void schedule_tick();
    void tick();

    boost::asio::io_context& io_;
    redis::Client& data_;
    const ListCacheSettings settings_;
    const redis::Options options_;  // the subscribers'
    std::vector<std::shared_ptr<Tracker>> trackers_;
    std::uint64_t topology_ = 0;  // of the cluster's masters the trackers follow
    std::string prefix_;
    std::uint64_t epoch_ = 0;          // bumped whenever tracking state is lost
    std::uint64_t invalidations_ = 0;  // a GET that saw one in flight is not kept
    bool tracking_ = false;            // every tracker is on
    bool running_ = false;
    boost::asio::steady_timer keepalive_;
    // Expires with the cache: the clients answer what is pending after it is gone ("stopped").
    std::shared_ptr<char> alive_ = std::make_shared<char>();
    // Asked with views of the request's names, without copying them into strings.
    struct Hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const {
            return std::hash<std::string_view>{}(s);
        }
    };
    struct Set {
        std::unordered_set<std::string, Hash, std::equal_to<>> members;
        // The prefix lengths of the members that read as networks, by family; built at the
        // first net lookup of the set.
        bool indexed = false;
        std::bitset<129> v4, v6;
        // Too large for the budget: kept as a name only, so lookups go to Redis without
        // loading it again until it changes.
        bool oversize = false;
    };
    // Called with a load's first page: ok=false, Redis did not answer; a null set, ask Redis.
    using LoadWaiter = std::function<void(bool ok, Set* set)>;
    bool wait_for_load(std::string_view key, LoadWaiter waiter);
    static void release(Load& load, bool ok, Set* set);
    static void answer(Set& set, const Query& query, std::vector<bool>* hits);

    ByteLru<Set> sets_;
    ByteLru<redis::Value> values_;
    std::unordered_map<std::string, std::shared_ptr<Load>, Hash, std::equal_to<>> loading_;
    Stats stats_;
};

}  // namespace postwarden
