// list_cache.cpp — see list_cache.hpp for the protocol with Redis and why it stays exact.
#include "common/list_cache.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "common/log.hpp"

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

ListCache::ListCache(boost::asio::io_context& io, redis::Client& data,
                     const redis::Options& options, std::string prefix)
    : io_(io), data_(data), prefix_(std::move(prefix)) {
    redis::Options sub = options;
    sub.on_ready = [this] { subscriber_ready(); };
    sub.on_message = [this](const redis::Value& v) { on_invalidate(v); };
    subscriber_ = std::make_unique<redis::Client>(io, sub);
}

ListCache::~ListCache() {
    stop();
}

void ListCache::start() {
    subscriber_->start();
}

void ListCache::stop() {
    subscriber_->stop();
    reset(nullptr);
}

void ListCache::reset(const char* why) {
    if (tracking_ && why) log::notice(std::string("list cache off until tracking is back: ") + why);
    tracking_ = false;
    ++epoch_;
    if (!sets_.empty() || !values_.empty()) ++stats_.resets;
    sets_.clear();
    values_.clear();
}

void ListCache::subscriber_ready() {
    reset("subscriber reconnected");
    subscriber_id_.clear();
    auto epoch = epoch_;
    auto id = std::make_shared<std::string>();
    subscriber_->command({"CLIENT", "ID"}, [id](redis::Reply r) {
        if (r.ok && r.value.type == redis::Value::Type::integer)
            *id = std::to_string(r.value.integer);
    });
    subscriber_->command({"SUBSCRIBE", "__redis__:invalidate"}, [this, id, epoch](redis::Reply r) {
        if (epoch != epoch_ || !r.ok || r.value.is_error() || id->empty()) return;
        subscriber_id_ = *id;
        enable_tracking();
    });
}

void ListCache::data_connection_ready() {
    reset("data connection renewed");
    enable_tracking();
}

void ListCache::enable_tracking() {
    if (subscriber_id_.empty() || !subscriber_->connected() || !data_.connected()) return;
    auto epoch = epoch_;
    data_.command({"CLIENT", "TRACKING", "off"}, [](redis::Reply) {});
    data_.command(
        {"CLIENT", "TRACKING", "on", "REDIRECT", subscriber_id_, "BCAST", "PREFIX",
         prefix_ + "block:", "PREFIX", prefix_ + "allow:", "PREFIX", prefix_ + "quota:limits:"},
        [this, epoch](redis::Reply r) {
            if (epoch != epoch_) return;
            if (!r.ok || r.value.is_error()) {
                log::warning("CLIENT TRACKING refused (" + (r.ok ? r.value.str : r.error) +
                             "): lists are read from Redis on every request");
                return;
            }
            tracking_ = true;
            log::info("list cache on: Redis reports every change to the lists");
        });
}

void ListCache::on_invalidate(const redis::Value& message) {
    ++invalidations_;
    ++stats_.invalidations;
    const auto& keys = message.elements[2];
    if (keys.type != redis::Value::Type::array) {  // FLUSHDB/FLUSHALL: everything changed
        sets_.clear();
        values_.clear();
        return;
    }
    for (const auto& k : keys.elements) {
        sets_.erase(k.str);
        values_.erase(k.str);
    }
}

// Both connections must be up for Redis to deliver invalidations: otherwise forget everything.
bool ListCache::usable() {
    if (tracking_ && (!data_.connected() || !subscriber_->connected())) reset("connection lost");
    return tracking_;
}

void ListCache::lookup(const std::vector<Query>& queries, Done done) {
    std::vector<std::vector<bool>> hits(queries.size());
    std::vector<std::size_t> missing;
    bool cached = usable();
    for (std::size_t i = 0; i < queries.size(); ++i) {
        auto it = cached ? sets_.find(queries[i].key) : sets_.end();
        if (it == sets_.end()) {
            missing.push_back(i);
            continue;
        }
        answer(it->second, queries[i], &hits[i]);
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
        if (auto it = values_.find(key); it != values_.end()) {
            ++stats_.hits;
            boost::asio::post(io_,
                              [done = std::move(done), value = it->second] { done(true, value); });
            return;
        }
    }
    bool keep = tracking_;
    if (keep) ++stats_.loads;
    data_.command({"GET", key}, [this, key, keep, done = std::move(done), epoch = epoch_,
                                 seen = invalidations_](redis::Reply r) {
        if (!r.ok) return done(false, r.value);
        // Kept only if nothing could have changed it since it was asked for.
        if (keep && epoch == epoch_ && seen == invalidations_ && tracking_) {
            if (values_.size() >= 65536) values_.clear();  // bounded: one per SASL login
            values_[key] = r.value;
        }
        done(true, r.value);
    });
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

// Loads what is missing: whole sets (SMEMBERS) while tracking, so the next request finds them in
// memory; otherwise just the members asked for (SMISMEMBER). All commands go out in one batch.
void ListCache::fetch(const std::vector<Query>& queries, std::vector<std::size_t> missing,
                      std::vector<std::vector<bool>> hits, Done done) {
    struct Batch {
        std::vector<std::vector<bool>> hits;
        std::size_t outstanding;
        bool failed = false;
        Done done;
    };
    auto batch =
        std::make_shared<Batch>(Batch{std::move(hits), missing.size(), false, std::move(done)});
    auto finish = [batch] {
        if (--batch->outstanding == 0) batch->done(!batch->failed, std::move(batch->hits));
    };
    bool whole = tracking_;
    for (auto i : missing) {
        std::string key(queries[i].key);
        if (!whole) {
            std::vector<std::string> argv{"SMISMEMBER", key};
            if (queries[i].client) {
                auto spelled = network_candidates(*queries[i].client);
                argv.insert(argv.end(), spelled.begin(), spelled.end());
            } else {
                argv.insert(argv.end(), queries[i].members.begin(), queries[i].members.end());
            }
            const std::size_t n = argv.size() - 2;
            data_.command(std::move(argv), [batch, i, key, n, finish](redis::Reply r) {
                if (!r.ok)
                    batch->failed = true;
                else if (!membership(r.value, n, &batch->hits[i]))
                    not_a_set(key, r.value);
                finish();
            });
            continue;
        }
        ++stats_.loads;
        data_.command({"SMEMBERS", key}, [this, batch, i, key, query = queries[i], finish,
                                          epoch = epoch_, seen = invalidations_](redis::Reply r) {
            if (!r.ok) {
                batch->failed = true;
                return finish();
            }
            Set set;
            if (r.value.type == redis::Value::Type::array) {
                for (auto& e : r.value.elements)
                    set.members.insert(std::move(e.str));
            } else {
                not_a_set(key, r.value);
            }
            answer(set, query, &batch->hits[i]);
            // Kept only if nothing could have changed it since it was asked for.
            if (epoch == epoch_ && seen == invalidations_ && tracking_) {
                if (sets_.size() >= 100000) sets_.clear();  // bounded: names come from clients
                sets_[key] = std::move(set);
            }
            finish();
        });
    }
}

}  // namespace postwarden
