// byte_lru.hpp — a map bounded in bytes, evicting the least recently used entry first: the
// shape of every cache a client can fill with what it sends (SPF results, greylist passes, list
// members). Bounding entries alone is not enough when one entry can hold 4 KB of a client's
// fields; clearing a full cache whole lets an attacker evict the hot entries for the price of a
// few new ones.
//
// The caller says what an entry costs (its key and value bytes; a fixed overhead is added for
// the nodes). Not thread-safe: the owner locks or keeps it on one thread.
#pragma once

#include <cstddef>
#include <functional>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace postwarden {

template <typename Value>
class ByteLru {
  public:
    // What a node of the list and the index cost beyond the key and the value's own bytes.
    static constexpr std::size_t kOverhead = 96;

    explicit ByteLru(std::size_t max_bytes) : max_bytes_(max_bytes) {}

    // The value, marked as just used; nullptr when absent.
    Value* find(std::string_view key) {
        auto it = index_.find(key);
        if (it == index_.end()) return nullptr;
        order_.splice(order_.begin(), order_, it->second);
        return &it->second->value;
    }

    // Inserts or replaces; value_bytes is what the value holds beyond sizeof(Value). An entry
    // larger than the whole budget is not kept.
    void put(std::string_view key, Value value, std::size_t value_bytes = 0) {
        erase(key);
        std::size_t cost = key.size() * 2 + sizeof(Value) + value_bytes + kOverhead;
        if (cost > max_bytes_) return;
        order_.push_front(Entry{std::string(key), std::move(value), cost});
        index_.emplace(order_.front().key, order_.begin());
        bytes_ += cost;
        while (bytes_ > max_bytes_)
            evict_oldest();
    }

    bool erase(std::string_view key) {
        auto it = index_.find(key);
        if (it == index_.end()) return false;
        bytes_ -= it->second->cost;
        order_.erase(it->second);
        index_.erase(it);
        return true;
    }

    void clear() {
        index_.clear();
        order_.clear();
        bytes_ = 0;
    }

    std::size_t size() const { return index_.size(); }
    std::size_t bytes() const { return bytes_; }
    std::size_t max_bytes() const { return max_bytes_; }

  private:
    struct Entry {
        std::string key;
        Value value;
        std::size_t cost;
    };

    void evict_oldest() {
        const Entry& last = order_.back();
        bytes_ -= last.cost;
        index_.erase(last.key);
        order_.pop_back();
    }

    // Looked up with a view, without building a string: a cache asked on every request.
    struct Hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const {
            return std::hash<std::string_view>{}(s);
        }
    };

    std::list<Entry> order_;  // most recently used first
    std::unordered_map<std::string, typename std::list<Entry>::iterator, Hash, std::equal_to<>>
        index_;
    std::size_t bytes_ = 0;
    std::size_t max_bytes_;
};

}  // namespace postwarden
