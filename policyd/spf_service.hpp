// spf_service.hpp — SPF at RCPT without blocking the event loop: checks run on a small thread
// pool (libspf2 and its DNS lookups are synchronous) and their results come back on the
// io_context thread. A short-lived cache spares the DNS a second evaluation for each further
// recipient of the same message, and for each further sender of a domain whose records do not
// look at the local part.
//
// A check whose every DNS answer is in the answer cache runs at once on the io_context thread
// (spf::Checker::check_mailfrom_cached); only those that must wait for the network go to the
// pool, through a queue kept here, where three rules keep one sender from stalling the others:
// - every check has a deadline (spf::Checker::deadline(), [dns] spf_deadline_ms) counted from
//   its request: a check still queued then answers temperror, a running one stops its lookups;
// - a check identical to one queued or running (same client, sender domain and HELO name) does
//   not start another evaluation but shares the result of that one;
// - at most max_per_domain() of the pool's threads work for one organizational domain of the
//   sender at once: the rest of that domain's checks wait while other domains' checks run.
// At most max_pending evaluations wait or run: past that (the DNS is down and every check waits
// out its timeouts) a check answers temperror at once. A temperror costs greylisting by network,
// never a reject.
//
// Threading: check() and the callbacks run on the io_context thread; so do the checks answered
// from the DNS cache and the queue's bookkeeping; the evaluations run on the pool.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/byte_lru.hpp"
#include "common/dns/dns.hpp"
#include "common/dns/spf.hpp"
#include "common/mail/dmarc.hpp"

namespace postwarden::policy {

class SpfService {
  public:
    using Clock = std::chrono::steady_clock;
    static constexpr std::size_t max_pending = 512;
    // What the cache of final results may take: about 30,000 results of ordinary size.
    static constexpr std::size_t default_cache_bytes = std::size_t{8} << 20;

    SpfService(boost::asio::io_context& io, const dns::ResolverOptions& options, int threads,
               std::chrono::milliseconds deadline = spf::default_deadline,
               std::size_t cache_bytes = default_cache_bytes);
    ~SpfService();

    // MAIL FROM check (RFC 7208 §2.4: HELO identity for the null sender); `done` runs on the
    // io_context thread: inside the call when the answer is cached, later otherwise.
    void check(std::string ip, std::string sender, std::string helo,
               std::function<void(spf::Outcome)> done);

    std::size_t cache_bytes() const { return cache_.bytes(); }
    // Threads one organizational domain may hold at once: a quarter of the pool, at least one.
    int max_per_domain() const { return max_per_domain_; }

  private:
    struct Cached {
        spf::Outcome outcome;
        Clock::time_point expires;
    };
    struct Keys {
        std::string sender;  // client, sender, HELO
        std::string domain;  // client, the sender's domain, HELO
    };
    struct Request {
        std::string ip, sender, helo;
        Keys keys;
        Clock::time_point deadline;
        std::function<void(spf::Outcome)> done;
    };
    // One evaluation, queued or running, and the requests that share it (the first started it).
    struct Flight {
        std::string key;    // in flights_: keys.domain, or keys.sender for a local-part record
        std::string group;  // the sender's organizational domain
        std::vector<Request> requests;
    };
    using FlightPtr = std::shared_ptr<Flight>;

    const spf::Outcome* find(const std::string& key, Clock::time_point now);
    void remember(const Keys& keys, const spf::Outcome& outcome);
    void join_or_start(Request request, bool per_sender);
    void dispatch();
    void run(FlightPtr flight);
    void finish(const FlightPtr& flight, const spf::Outcome& outcome);
    void expire_queued();
    void arm_expiry(Clock::time_point when);

    boost::asio::io_context& io_;
    std::size_t pending_ = 0;  // evaluations queued or running
    bool overloaded_ = false;  // logged once per episode
    spf::Checker checker_;
    dmarc::PublicSuffixList psl_;
    const int threads_, max_per_domain_;
    int running_ = 0;
    std::unordered_map<std::string, int> running_per_group_;
    std::unordered_map<std::string, FlightPtr> flights_;  // queued or running, by Flight::key
    std::deque<FlightPtr> queue_;                         // waiting for a thread, oldest first
    boost::asio::steady_timer expiry_;                    // the earliest deadline in queue_
    Clock::time_point expiry_at_ = Clock::time_point::max();
    ByteLru<Cached> cache_;
    boost::asio::thread_pool pool_;  // last: joined (in ~SpfService) before the rest goes
};

}  // namespace postwarden::policy
