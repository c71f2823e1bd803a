// spf_service.cpp — thread-pool SPF checks: a byte-bounded cache of final results, and a queue
// that merges identical checks, shares the pool fairly between sender domains and answers
// temperror at each check's deadline.
#include "policyd/spf_service.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <string_view>

#include "common/log.hpp"
#include "policyd/metrics.hpp"

namespace postwarden::policy {

namespace {
// Long enough to cover one SMTP transaction's recipients, short against DNS changes.
constexpr auto cache_ttl = std::chrono::seconds(60);

spf::Outcome temperror() {
    return spf::Outcome{spf::Result::temperror, {}, {}};
}
}  // namespace

SpfService::SpfService(boost::asio::io_context& io, const dns::ResolverOptions& options,
                       int threads, std::chrono::milliseconds deadline, std::size_t cache_bytes)
    : io_(io),
      checker_(options, deadline),
      threads_(std::max(1, threads)),
      max_per_domain_(std::max(1, threads_ / 4)),
      expiry_(io),
      cache_(cache_bytes),
      pool_(threads_) {}

// Queued checks never reached the pool (at shutdown nobody waits for them); running ones finish
// within their deadline.
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
    auto now = Clock::now();
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
        metrics().spf_duration.observe(Clock::now() - now);
        remember(keys, *outcome);
        done(std::move(*outcome));
        return;
    }
    join_or_start(Request{std::move(ip), std::move(sender), std::move(helo), std::move(keys),
                          now + checker_.deadline(), std::move(done)},
                  false);
}

// Joins the evaluation of the same client, domain and HELO name already queued or running
// (per_sender: of the same sender), or queues a new one. A request that joins shares the
// evaluation's deadline, the first request's: it may get temperror sooner than its own deadline
// (greylisting by network), never later.
void SpfService::join_or_start(Request request, bool per_sender) {
    const std::string& key = per_sender ? request.keys.sender : request.keys.domain;
    if (auto it = flights_.find(key); it != flights_.end()) {
        it->second->requests.push_back(std::move(request));
        return;
    }

    if (pending_ >= max_pending) {
        if (!overloaded_)
            log::warning("SPF: " + std::to_string(pending_) +
                         " checks waiting for DNS; answering temperror until they drain");
        overloaded_ = true;
        boost::asio::post(io_, [done = std::move(request.done)] { done(temperror()); });
        return;
    }
    ++pending_;
    auto flight = std::make_shared<Flight>();
    flight->key = key;
    flight->group = psl_.organizational_domain(spf::mailfrom_domain(request.sender, request.helo));
    auto deadline = request.deadline;
    flight->requests.push_back(std::move(request));
    flights_.emplace(flight->key, flight);
    queue_.push_back(std::move(flight));
    dispatch();
    if (!queue_.empty()) arm_expiry(deadline);
}

// Starts queued evaluations, oldest first, while a thread is free, skipping those whose domain
// already holds its share of the threads.
void SpfService::dispatch() {
    for (auto it = queue_.begin(); it != queue_.end() && running_ < threads_;) {
        if (running_per_group_[(*it)->group] >= max_per_domain_) {
            ++it;
            continue;
        }
        auto flight = std::move(*it);
        it = queue_.erase(it);
        run(std::move(flight));
    }
}

void SpfService::run(FlightPtr flight) {
    ++running_;
    ++running_per_group_[flight->group];
    const Request& first = flight->requests.front();
    boost::asio::post(pool_, [this, flight = std::move(flight), ip = first.ip,
                              sender = first.sender, helo = first.helo,
                              deadline = first.deadline]() mutable {
        auto start = Clock::now();
        auto outcome = checker_.check_mailfrom(ip, sender, helo, deadline);
        metrics().spf_duration.observe(Clock::now() - start);
        boost::asio::post(io_, [this, flight = std::move(flight), outcome = std::move(outcome)] {
            --running_;
            if (--running_per_group_[flight->group] == 0) running_per_group_.erase(flight->group);
            finish(flight, outcome);
            dispatch();
        });
    });
}

// Answers every request of the flight. A result that used the local part holds for the first
// sender only: the others' are evaluated again, each for itself. A fail's explanation names the
// first sender, so the others get the result without it.
void SpfService::finish(const FlightPtr& flight, const spf::Outcome& outcome) {
    if (auto it = flights_.find(flight->key); it != flights_.end() && it->second == flight)
        flights_.erase(it);
    if (--pending_ == 0) overloaded_ = false;
    auto& requests = flight->requests;
    remember(requests.front().keys, outcome);
    const std::string first_sender = requests.front().sender;
    for (auto& request : requests) {
        if (request.sender == first_sender) {
            request.done(outcome);
        } else if (outcome.local_part_used && outcome.result != spf::Result::temperror) {
            join_or_start(std::move(request), true);
        } else {
            auto shared = outcome;
            shared.explanation.clear();
            request.done(std::move(shared));
        }
    }
}

// Queued evaluations whose deadline has come answer temperror; the timer is set for the next.
void SpfService::expire_queued() {
    auto now = Clock::now();
    auto next = Clock::time_point::max();
    std::vector<FlightPtr> expired;
    for (auto it = queue_.begin(); it != queue_.end();) {
        auto deadline = (*it)->requests.front().deadline;
        if (deadline <= now) {
            expired.push_back(std::move(*it));
            it = queue_.erase(it);
        } else {
            next = std::min(next, deadline);
            ++it;
        }
    }
    expiry_at_ = Clock::time_point::max();
    if (next != Clock::time_point::max()) arm_expiry(next);
    for (const auto& flight : expired)
        finish(flight, temperror());
}

void SpfService::arm_expiry(Clock::time_point when) {
    if (when >= expiry_at_) return;
    expiry_at_ = when;
    expiry_.expires_at(when);
    expiry_.async_wait([this](const boost::system::error_code& error) {
        if (!error) expire_queued();
    });
}

const spf::Outcome* SpfService::find(const std::string& key, Clock::time_point now) {
    Cached* kept = cache_.find(key);
    if (!kept) return nullptr;
    if (kept->expires > now) return &kept->outcome;
    cache_.erase(key);
    return nullptr;
}

// Temporary errors are not remembered: the next recipient asks the DNS again. A result the
// records reached without the sender's local part is kept for its domain (a mailing list's
// VERP senders, all different, then share one check), unless it is a fail, whose explanation
// names the sender. The cache is bounded in bytes, the least recently used result going first,
// so senders, HELO names and explanations of any size cannot make it grow past its bound.
void SpfService::remember(const Keys& keys, const spf::Outcome& outcome) {
    if (outcome.result == spf::Result::temperror) return;
    bool shared = !outcome.local_part_used && outcome.result != spf::Result::fail;
    std::size_t bytes = outcome.domain.capacity() + outcome.explanation.capacity();
    cache_.put(shared ? keys.domain : keys.sender, Cached{outcome, Clock::now() + cache_ttl},
               bytes);
}

}  // namespace postwarden::policy
