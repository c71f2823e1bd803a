// dns_cache.hpp — a bounded, thread-shared cache of dns::Resolver answers that keeps each one
// only as long as its TTL allows ([dns] cache_entries). c-ares 1.18 (Debian 12) has no answer
// cache, and a fresh channel per query() could not use one anyway; without this the milter asks
// the DNS about five times per message (SPF record and its terms, HELO, DKIM key, DMARC record),
// the same questions for every message of a sender.
//
// What is kept, and for how long (cache_seconds()):
// - an answer with records: the smallest TTL of the records used, the CNAME chain included;
// - NXDOMAIN and NODATA: RFC 2308 §5, min(TTL of the SOA in the authority section, its MINIMUM
//   field), and the CNAMEs before it; without an SOA a negative answer is not kept (§5: "SHOULD
//   NOT be cached"), since nothing says for how long it holds;
// - temp_error (timeout, SERVFAIL, malformed) never: the next lookup asks again;
// - TTL 0 never (RFC 1035 §3.2.1: "only be used for the transaction in progress"), and nothing
//   longer than max_cache_seconds.
// Bounded twice: in answers (cache_entries) and in bytes (bytes_per_entry each on average), the
// least recently used going first when either is reached.
//
// Entry points: AnswerCache (find, store), cache_seconds(), cache_result_labels().
// Threading: every member is safe from any thread at once. One mutex guards the table; it is
// held for a hash look-up and a few pointer moves, never during a network query, and answers
// are shared immutable (a hit copies its answer out after the lock is released).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/dns/dns_answer.hpp"

namespace postwarden::metrics {
class CounterFamily;
}

namespace postwarden::dns {

// The cap on any answer's life, whatever its TTL says. Records often carry a day or more; an hour
// keeps nearly all the benefit (a sender's messages come in bursts) while bounding how long a
// changed record outlives its change here: a revoked DKIM key, a corrected SPF record, a new
// DMARC policy — or a wrong answer, since the daemon has no command to flush its cache. An hour is
// also RFC 2308 §4's advice for the negative TTL ("one to three hours have been found to work
// well").
inline constexpr std::uint32_t max_cache_seconds = 3600;

// Seconds `answer` (to a query of `type`) may be reused, from its packet as described above,
// capped at max_cache_seconds; 0 means not at all. Pure; any bytes in (a malformed packet: 0).
std::uint32_t cache_seconds(const Answer& answer, Type type);

// Label values of the cache metric, in AnswerCache::Result's order: "hit", "miss".
std::vector<std::string> cache_result_labels();

class AnswerCache {
  public:
    using Clock = std::chrono::steady_clock;
    enum Result : std::size_t { hit, miss };  // series of the `results` counter

    // Memory the answers may take, per entry allowed: a typical answer (an SPF record, a DKIM
    // key) needs a few hundred bytes, but one over TCP may be 64 KiB, and whoever runs a
    // sender's DNS chooses; a count alone would let 10000 such answers take 1 GB.
    static constexpr std::size_t bytes_per_entry = 2048;

    // At most max_entries answers (0: nothing is kept), together at most max_entries *
    // bytes_per_entry bytes (cost()); when either is full, the least recently used answers make
    // room. results: counts each find() as a hit or a miss; null: not counted.
    explicit AnswerCache(std::size_t max_entries, metrics::CounterFamily* results = nullptr);
    AnswerCache(const AnswerCache&) = delete;
    AnswerCache& operator=(const AnswerCache&) = delete;

    // The answer kept for name/type (names compare case-insensitively, a final dot ignored) if
    // it has not expired at `now`; null otherwise. An expired answer is dropped. count_miss
    // false: a miss is not counted in `results` (a look that will be asked again, for real).
    std::shared_ptr<const Answer> find(std::string_view name, Type type, Clock::time_point now,
                                       bool count_miss = true);
    // Keeps a copy of `answer` for cache_seconds() from `now`, replacing one kept for the same
    // question; does nothing when cache_seconds() is 0.
    void store(std::string_view name, Type type, const Answer& answer, Clock::time_point now);

    std::size_t size() const;
    std::size_t bytes() const;  // the cost() of what is kept
    std::size_t max_entries() const { return max_entries_; }

    // What keeping `answer` under `key` counts against the byte bound: its packet, its decoded
    // strings, and the bookkeeping around them.
    static std::size_t cost(const std::string& key, const Answer& answer);

  private:
    struct Entry {
        std::string key;
        Clock::time_point expires;
        std::shared_ptr<const Answer> answer;
        std::size_t cost = 0;
    };
    using Entries = std::list<Entry>;

    // Takes `entry` (already unlinked from the index) out of entries_ into `dropped`.
    void drop(Entries::iterator entry, Entries* dropped);

    const std::size_t max_entries_, max_bytes_;
    metrics::CounterFamily* const results_;
    mutable std::mutex mutex_;
    Entries entries_;  // most recently used first
    std::size_t bytes_ = 0;
    // Keys are views of the entries' own keys: list nodes never move, and a spliced-out node
    // lives until its index entry is gone.
    std::unordered_map<std::string_view, Entries::iterator> index_;
};

}  // namespace postwarden::dns
