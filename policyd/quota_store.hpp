// quota_store.hpp — sending quotas as policyd keeps them in Redis, behind two calls: reserve()
// at RCPT answers a QuotaOutcome, commit() at END-OF-MESSAGE a CommitOutcome; nullopt when
// Redis did not answer or answered nonsense (logged here; the caller applies [quota] fail_mode).
// The rule itself is common/redis/lua/quota.lua; the keys, commands and reply shapes are quota.hpp.
// What this file adds is the order of the round trips and what this process remembers:
//
// reserve: with limits, one MULTI ... EXEC (reserve_transaction) makes the usual reservation;
//   whatever else it finds, quota.lua decides, one round trip later, after taking back what the
//   transaction wrote (Undo). Without limits only auto_block counts, and the script does it all.
//   A key the transaction made anew without its TTL gets it from a PEXPIRE sent at once; the
//   answer does not wait for it. A reservation made is remembered (Reservations) for the commit.
//   When the script blocks a login (auto_block), the block is written before the answer: the
//   reason (HSET block:why), then the login (SADD block:login), so a blocked login never lacks
//   its reason. Those operator keys are not under the user's hash tag (one Redis Cluster slot
//   per script), so they are written here, not in the script; both writes are idempotent, and
//   the answer is the block whatever they answer.
// commit: one MULTI ... EXEC (commit_transaction) takes the reservations this process made;
//   the script commits whatever else the message holds, and every commit the transaction cannot
//   take. The outcome counts both.
//
// What may be left out of Redis, and why it is safe across instances, is QuotaMemo's and
// Reservations' header (quota.hpp): the memo only skips TTLs and questions that would not change
// a decision, and Reservations are a hint that the commit transaction checks against held.
// A replay is harmless: the transaction's ZADD NX finds the member already held, which is not
// the usual reservation, so quota.lua decides, after taking back the transaction's counts; it
// answers a replayed RCPT as the first time, without counting again, and a replayed commit
// finds nothing left (quota.lua's header, "Replay").
//
// Threading: policyd's io thread. `done` is called exactly once, from a Redis callback. facts,
// limits and config are borrowed until then: the caller keeps them in the object `done` holds
// (RequestFlow), so they live as long as the callbacks that read them. The store must outlive
// the Redis client's callbacks (it lives in the Handler, as the client).
#pragma once

#include <functional>
#include <optional>
#include <vector>

#include "common/config.hpp"
#include "common/redis/redis.hpp"
#include "policyd/decision.hpp"
#include "policyd/quota.hpp"

namespace postwarden::policy {

class QuotaStore {
  public:
    using Reserved = std::function<void(std::optional<QuotaOutcome>)>;
    using Committed = std::function<void(std::optional<CommitOutcome>)>;

    explicit QuotaStore(redis::Client& redis);

    // One recipient of facts.login at RCPT against limits (the user's effective windows).
    void reserve(const Facts& facts, const std::vector<QuotaWindow>& limits, const Config& config,
                 Reserved done);
    // The message's reservations at END-OF-MESSAGE; recipient_count -1 when unknown.
    void commit(const Facts& facts, long recipient_count, const std::vector<QuotaWindow>& limits,
                const Config& config, Committed done);

  private:
    struct Reserve;  // one reserve() in flight
    struct Commit;   // one commit() in flight

    void reserve_script(Reserve r, Undo undo, ReserveTransaction t);
    void write_block(Reserve r, QuotaOutcome outcome);
    void commit_script(Commit c, long long done);
    void set_ttls(std::vector<std::vector<std::string>> pexpires);

    redis::Client& redis_;
    redis::Script script_;
    QuotaMemo memo_;
    Reservations reservations_;
};

}  // namespace postwarden::policy
