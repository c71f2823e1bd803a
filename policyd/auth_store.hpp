// auth_store.hpp — the login-protection state in Redis (SPEC §8) behind two calls: lookup() for
// an allow request, record_failure() for a failed login reported. nullopt when Redis did not
// answer, or answered nonsense: the caller answers per [auth] fail_mode. The keys are
// common/auth_keys.hpp; the counting rule is common/redis/lua/auth_fail.lua.
//
// lookup: SISMEMBER block:auth, GET of the client's lock and ZCOUNT of the login's recent
//   failures, sent in one write (one round trip). Reads only: no atomicity needed, and the keys
//   live in different cluster slots.
// record_failure: auth_fail.lua once for the client (unless it is exempt or unknown) and once
//   for the login (unless the tarpit is off), in one write; each call is atomic on its own keys.
//   A client the script locks is added to the index auth:locked, for `postwarden blocked`.
//
// Threading: the auth server's io thread, as its Redis client. `done` is called exactly once,
// from a Redis callback. The store must outlive the client's callbacks.
#pragma once

#include <functional>
#include <optional>
#include <random>
#include <string>

#include "common/config.hpp"
#include "common/redis/redis.hpp"
#include "policyd/auth_decision.hpp"

namespace postwarden::policy {

struct FailureOutcome {
    std::optional<long long> locked_until;  // the client is locked until then (ms)
    bool locked_now = false;                // by this failure
    long client_failures = 0;               // within the window, this one included
    long login_failures = 0;
};

class AuthStore {
  public:
    using Looked = std::function<void(std::optional<AuthState>)>;
    using Recorded = std::function<void(std::optional<FailureOutcome>)>;

    explicit AuthStore(redis::Client& redis);

    // client: auth_client_id() of the remote address, or "" for none.
    void lookup(const std::string& login, const std::string& client, long long now_ms,
                const Config& config, Looked done);
    // client "" when there is none or it is exempt: only the login counts.
    void record_failure(const std::string& login, const std::string& client, long long now_ms,
                        const Config& config, Recorded done);

  private:
    std::string failure_id(long long now_ms);
    void index_lockout(const std::string& index, const std::string& client, long long until_ms,
                       long long lockout_ms);

    redis::Client& redis_;
    redis::Script script_;
    std::mt19937_64 random_;
};

}  // namespace postwarden::policy
