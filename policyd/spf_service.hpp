// spf_service.hpp — SPF at RCPT without blocking the event loop: checks run on a small thread
// pool (libspf2 and its DNS lookups are synchronous) and their results come back on the
// io_context thread. A short-lived cache spares the DNS a second evaluation for each further
// recipient of the same message, and for each further sender of a domain whose records do not
// look at the local part. At most max_pending checks wait for the pool: past that (the
// DNS is down and every check waits out its timeouts) a check answers temperror at once, so a
// DNS outage costs greylisting by network instead of an ever longer queue.
//
// A check whose every DNS answer is in the answer cache runs at once on the io_context thread
// (spf::Checker::check_mailfrom_cached); only those that must wait for the network go to the
// pool.
//
// Threading: check() and the callbacks run on the io_context thread; so do the checks answered
// from the DNS cache, and the rest run on the pool.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <unordered_map>

#include "common/dns.hpp"
#include "common/spf.hpp"

namespace postwarden::policy {

class SpfService {
  public:
    static constexpr std::size_t max_pending = 512;

    SpfService(boost::asio::io_context& io, const dns::ResolverOptions& options, int threads);
    ~SpfService();

    // MAIL FROM check (RFC 7208 §2.4: HELO identity for the null sender); `done` runs on the
    // io_context thread: inside the call when the answer is cached, later otherwise.
    void check(std::string ip, std::string sender, std::string helo,
               std::function<void(spf::Outcome)> done);

  private:
    struct Cached {
        spf::Outcome outcome;
        std::chrono::steady_clock::time_point expires;
    };
    struct Keys {
        std::string sender;  // client, sender, HELO
        std::string domain;  // client, the sender's domain, HELO
    };
    const spf::Outcome* find(const std::string& key, std::chrono::steady_clock::time_point now);
    void remember(const Keys& keys, const spf::Outcome& outcome);

    boost::asio::io_context& io_;
    std::size_t pending_ = 0;  // checks queued or running on the pool
    bool overloaded_ = false;  // logged once per episode
    spf::Checker checker_;
    boost::asio::thread_pool pool_;
    std::unordered_map<std::string, Cached> cache_;
};

}  // namespace postwarden::policy
