// spf_service.cpp — thread-pool SPF checks with a bounded cache of final results.
#include "policyd/spf_service.hpp"

#include <boost/asio/post.hpp>

#include <string_view>

#include "common/log.hpp"
#include "policyd/metrics.hpp"

namespace postwarden::policy {

namespace {
// Long enough to cover one SMTP transaction's recipients, short against DNS changes.
constexpr auto cache_ttl = std::chrono::seconds(60);
constexpr std::size_t cache_max = 20000;
}  // namespace

SpfService::SpfService(boost::asio::io_context& io, const dns::ResolverOptions& options,
                       int threads)
    : io_(io), checker_(options), pool_(threads) {}

// Checks not yet started are dropped (at shutdown nobody waits for them); running ones finish
// within their DNS timeouts.
SpfService::~SpfService() {
    pool_.stop();
    pool_.join();
}

void SpfService::check(std::string ip, std::string sender, std::string helo,
                       std::function<void(spf::Outcome)> done) {
    // A sender has no newline: a sender's key has two, a domain's three, so they never meet.
    auto key_of = [&](std::string_view who, std::string_view separator) {
        std::string key;
        key.reserve(ip.size() + separator.size() + who.size() + 1 + helo.size());
        key.append(ip).append(separator).append(who).append(1, '\n').append(helo);
        return key;
    };
    // Most results are kept per domain (remember()): that key first.
    Keys keys{{}, key_of(spf::mailfrom_domain(sender, helo), "\n\n")};
    auto now = std::chrono::steady_clock::now();
    const spf::Outcome* kept = find(keys.domain, now);
    if (!kept) {
        keys.sender = key_of(sender, "\n");
        kept = find(keys.sender, now);
    }
    if (kept) {
        // Answered in the call: the caller's next step (one Redis script) is queued at once,
        // and the common case costs no extra turn of the event loop.
        auto outcome = *kept;
        done(std::move(outcome));
        return;
    }
    // Every DNS answer the check needs is usually cached (the senders' domains repeat): then it
    // runs here, in about the time of a Redis call, and spares two thread hand-offs.
    if (auto outcome = checker_.check_mailfrom_cached(ip, sender, helo)) {
        metrics().spf_duration.observe(std::chrono::steady_clock::now() - now);
        remember(keys, *outcome);
        done(std::move(*outcome));
        return;
    }
    if (pending_ >= max_pending) {
        if (!overloaded_)
            log::warning("SPF: " + std::to_string(pending_) +
                         " checks waiting for DNS; answering temperror until they drain");
        overloaded_ = true;
        spf::Outcome busy{spf::Result::temperror, {}, {}};
        boost::asio::post(io_, [busy, done = std::move(done)] { done(busy); });
        return;
    }
    ++pending_;
    boost::asio::post(
        pool_, [this, keys = std::move(keys), ip = std::move(ip), sender = std::move(sender),
                helo = std::move(helo), done = std::move(done)]() mutable {
            auto start = std::chrono::steady_clock::now();
            auto outcome = checker_.check_mailfrom(ip, sender, helo);
            metrics().spf_duration.observe(std::chrono::steady_clock::now() - start);
            boost::asio::post(io_, [this, keys = std::move(keys), outcome = std::move(outcome),
                                    done = std::move(done)] {
                if (--pending_ == 0) overloaded_ = false;
                remember(keys, outcome);
                done(outcome);
            });
        });
}

const spf::Outcome* SpfService::find(const std::string& key,
                                     std::chrono::steady_clock::time_point now) {
    auto it = cache_.find(key);
    if (it == cache_.end()) return nullptr;
    if (it->second.expires > now) return &it->second.outcome;
    cache_.erase(it);
    return nullptr;
}

// Temporary errors are not remembered: the next recipient asks the DNS again. A result the
// records reached without the sender's local part is kept for its domain (a mailing list's
// VERP senders, all different, then share one check), unless it is a fail, whose explanation
// names the sender.
void SpfService::remember(const Keys& keys, const spf::Outcome& outcome) {
    if (outcome.result == spf::Result::temperror) return;
    auto now = std::chrono::steady_clock::now();
    if (cache_.size() >= cache_max) {
        for (auto it = cache_.begin(); it != cache_.end();)
            it = it->second.expires <= now ? cache_.erase(it) : std::next(it);
        if (cache_.size() >= cache_max) cache_.clear();
    }
    bool shared = !outcome.local_part_used && outcome.result != spf::Result::fail;
    cache_[shared ? keys.domain : keys.sender] = {outcome, now + cache_ttl};
}

}  // namespace postwarden::policy
