// spf.hpp — SPF checks (RFC 7208) for policyd (greylisting by SPF-authenticated domain, S2) and
// the milter (Authentication-Results, DMARC). libspf2 evaluates the records; every DNS lookup it
// makes goes through dns::Resolver, so [dns] nameservers and timeout_ms apply to SPF as well.
//
// Entry points: Checker::check_mailfrom(), check_mailfrom_cached() and check_helo().
//
// Threading: a Checker is immutable; each check takes a libspf2 server of its own (reused between
// checks, mutex-guarded) and builds its request and response, so any number of threads may run
// checks on one Checker at once. A check blocks its thread for its DNS lookups: each is
// bounded by [dns] timeout_ms, and the check as a whole by a deadline ([dns] spf_deadline_ms,
// RFC 7208 §4.6.4), past which no lookup is made and the result is temperror. Without it ten
// slow terms (each answered just before timeout_ms) would hold a thread ten times as long.
//
// Outside input (client IP, sender, HELO name) is untrusted: whatever it holds, a check returns a
// Result (none for names that cannot be checked), never throws and never aborts.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/dns/dns.hpp"

namespace postwarden::spf {

class ServerPool;  // spf.cpp

enum class Result { none, neutral, pass, fail, softfail, temperror, permerror };

// The RFC 7208 spelling: "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror".
std::string_view to_string(Result result);

struct Outcome {
    Result result = Result::none;
    // The domain that was checked: the sender's domain, or the HELO name for <> and HELO checks.
    std::string domain;
    // For fail: the domain's exp= text, or our default. Empty for the other results.
    std::string explanation;
    // A record used the sender's local part (%{l}, %{s}), or the local part could not be
    // checked: the result holds for this sender only. Otherwise the result (the explanation
    // aside) is the same for every sender of the domain, from the same client and HELO name.
    bool local_part_used = false;
};

// The domain a MAIL FROM check is about: the sender's, or the HELO name for <> (§2.4).
std::string_view mailfrom_domain(std::string_view sender, std::string_view helo);

// The time a whole check may take unless the caller says otherwise: RFC 7208 §4.6.4 asks that
// the limit "allow at least 20 seconds", and 20 s stays below Postfix's milter_command_timeout
// (30 s) and smtpd_policy_service_timeout (100 s).
inline constexpr std::chrono::milliseconds default_deadline{20000};

class Checker {
  public:
    using Clock = std::chrono::steady_clock;

    // `deadline`: how long one check may take, lookups included.
    explicit Checker(const dns::ResolverOptions& options,
                     std::chrono::milliseconds deadline = default_deadline);
    // Every lookup through this resolver (the SPF fuzz target serves hostile answers this way).
    explicit Checker(dns::Resolver resolver, std::chrono::milliseconds deadline = default_deadline);

    // MAIL FROM identity. An empty sender (<>) is checked as postmaster@helo (RFC 7208 §2.4);
    // a sender without a local part as postmaster@domain (§4.3). Temperror when it is not done
    // within deadline() from the call.
    Outcome check_mailfrom(std::string_view client_ip, std::string_view sender,
                           std::string_view helo) const;
    // The same, done by `deadline`: for a caller whose check waited in a queue first, so that
    // the time waited counts against the check's budget.
    Outcome check_mailfrom(std::string_view client_ip, std::string_view sender,
                           std::string_view helo, Clock::time_point deadline) const;
    std::chrono::milliseconds deadline() const { return deadline_; }
    // The same check answered from the resolver's DNS cache alone, without waiting on the
    // network: the outcome check_mailfrom() would give, or nullopt when some answer it needs is
    // not cached (or there is no cache). For callers that must not block, such as an event loop.
    std::optional<Outcome> check_mailfrom_cached(std::string_view client_ip,
                                                 std::string_view sender,
                                                 std::string_view helo) const;

    // HELO identity (§2.3): the HELO name, as postmaster@helo. With `deadline`: done by then
    // (a caller that checks both identities at one SMTP command gives both one deadline).
    Outcome check_helo(std::string_view client_ip, std::string_view helo) const;
    Outcome check_helo(std::string_view client_ip, std::string_view helo,
                       Clock::time_point deadline) const;

  private:
    // cache_only: answered from the DNS cache alone (nullopt when it lacks an answer), for
    // which the deadline does not matter.
    std::optional<Outcome> mailfrom(std::string_view client_ip, std::string_view sender,
                                    std::string_view helo, bool cache_only,
                                    Clock::time_point deadline) const;
    std::optional<Outcome> check(std::string_view client_ip, std::string_view local_part,
                                 std::string_view domain, std::string_view helo, bool cache_only,
                                 Clock::time_point deadline) const;

    std::shared_ptr<ServerPool>
        pool_;  // libspf2 servers between checks (spf.cpp); shared by copies
    std::chrono::milliseconds deadline_;
};

}  // namespace postwarden::spf
