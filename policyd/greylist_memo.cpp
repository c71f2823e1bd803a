// greylist_memo.cpp — remembered greylisting passes; see greylist_memo.hpp.
#include "policyd/greylist_memo.hpp"

#include <algorithm>

namespace postwarden::policy {

namespace {
long long hold_ms(const Config& config) {
    return std::min<long long>(60'000, config.greylist.pass_ttl * 1000 / 2);
}
}  // namespace

void GreylistMemo::roll(const Config& config, long long now_ms) {
    const auto& g = config.greylist;
    bool changed = g.auto_allow_clients != auto_allow_clients_ || g.pass_ttl != pass_ttl_;
    // A clock that went back also ends the period: nothing is kept longer than the hold.
    if (changed || now_ms - period_start_ms_ >= hold_ms(config) || now_ms < period_start_ms_) {
        entries_.clear();
        period_start_ms_ = now_ms;
        auto_allow_clients_ = g.auto_allow_clients;
        pass_ttl_ = g.pass_ttl;
    }
}

std::optional<GreylistOutcome> GreylistMemo::recall(const GreylistKeys& keys, const Config& config,
                                                    long long now_ms) {
    roll(config, now_ms);
    if (entries_.size() == 0) return std::nullopt;
    if (greylist_auto_allow(keys, config) > 0) {
        if (const long* passed = entries_.find(keys.client))
            return GreylistOutcome{GreylistVerdict::client_allowed, *passed};
    }
    if (entries_.find(keys.triplet)) return GreylistOutcome{GreylistVerdict::known, 0};
    return std::nullopt;
}

void GreylistMemo::remember(const GreylistKeys& keys, const GreylistOutcome& outcome,
                            const Config& config, long long now_ms) {
    roll(config, now_ms);
    switch (outcome.verdict) {
        case GreylistVerdict::passed:
        case GreylistVerdict::known:
            entries_.put(keys.triplet, 0);
            return;
        case GreylistVerdict::client_allowed:
            entries_.put(keys.client, outcome.seconds);
            return;
        case GreylistVerdict::defer_new:
        case GreylistVerdict::defer_early:
            return;
    }
}

}  // namespace postwarden::policy
