// greylist_memo.hpp — the passes policyd remembers, so that mail from a sender that already
// passed greylisting is answered without asking Redis again each time.
//
// Why: a known triplet is most of what a greylisting server sees (the same correspondents, every
// day), and each one ran greylist.lua in Redis — 11 µs of Redis CPU per request, the largest
// cost left on policyd's busiest path (docs/benchmarks.md). A pass is final until its key expires
// (pass_ttl, 35 days by default), so remembering it for a moment changes nothing in the answer.
//
// What it changes: the script refreshes the TTL of a passed triplet (and of its client's
// auto-allow set) on every pass; with the memo, at most once per hold period (60 s, or half
// of pass_ttl when that is shorter), so a pass may expire up to that much earlier than after its
// last mail. A key deleted by hand (redis-cli DEL, to greylist a sender again) takes effect in
// this process within the hold period. Nothing else is remembered: a new or early triplet always
// goes to Redis, and the lists are checked before greylisting, exactly as without the memo.
//
// Pure (the caller gives the time) and single-threaded: policyd's io thread owns it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "common/byte_lru.hpp"
#include "common/config.hpp"
#include "common/greylist.hpp"

namespace postwarden::policy {

class GreylistMemo {
  public:
    // Bounded in bytes (keys are as long as the sender and recipient a client sends): past
    // max_bytes the pass used least recently is forgotten first, so a flood of new passes does
    // not push out the ones in use. 8 MB hold about 36,000 passes of usual lengths.
    explicit GreylistMemo(std::size_t max_bytes = 8 * 1024 * 1024) : entries_(max_bytes) {}

    // What greylist.lua would answer for these keys, if a pass is remembered: the client's
    // auto-allow first (as the script checks it first), then the triplet's pass as "known".
    std::optional<GreylistOutcome> recall(const GreylistKeys& keys, const Config& config,
                                          long long now_ms);
    // Remembers what the script answered, when it is a pass.
    void remember(const GreylistKeys& keys, const GreylistOutcome& outcome, const Config& config,
                  long long now_ms);

    std::size_t size() const { return entries_.size(); }
    std::size_t bytes() const { return entries_.bytes(); }

  private:
    // Forgets everything when the hold period is over or the settings a pass depends on changed.
    void roll(const Config& config, long long now_ms);

    ByteLru<long> entries_;  // triplet key → 0; client key → its auto-allow count
    long long period_start_ms_ = 0;
    long auto_allow_clients_ = -1, pass_ttl_ = -1;
};

}  // namespace postwarden::policy
