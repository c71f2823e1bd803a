// selector_cache.hpp — the DKIM selector SETs (<prefix>dkim:selectors:<domain>) answered from
// memory, kept exact by Redis' client-side caching exactly as policyd's lists are
// (common/redis/list_cache.hpp, tracking the prefix dkim:selectors: alone): activating or
// retiring a selector with redis-cli or `postwarden dkim` takes effect on the next message on
// every host, while a message usually costs no Redis round trip at all.
//
// Entry points: SelectorCache::members().
//
// Threading: members() may be called from any thread (libmilter's); it posts to the cache's own
// io thread and waits, at most about 2 × [redis] timeout_ms + 100 ms. Two Redis connections of
// its own (data and invalidation subscriber).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/redis/redis_types.hpp"

namespace postwarden::milter {

class SelectorCache {
  public:
    SelectorCache(redis::Options options, std::string prefix);
    ~SelectorCache();
    SelectorCache(const SelectorCache&) = delete;
    SelectorCache& operator=(const SelectorCache&) = delete;

    // The members of each SET named (full key names), in order; nullopt when Redis did not
    // answer in time (any of them).
    std::optional<std::vector<std::vector<std::string>>> members(
        const std::vector<std::string>& keys) const;

  private:
    struct State;
    std::unique_ptr<State> state_;
    std::thread thread_;
    int wait_ms_;
};

}  // namespace postwarden::milter
