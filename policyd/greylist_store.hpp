// greylist_store.hpp — greylisting as policyd keeps it in Redis, behind one call: check() answers
// a triplet's GreylistOutcome, or nullopt when Redis did not (the caller applies [greylist]
// fail_mode). The rule itself is common/redis/lua/greylist.lua; the keys and arguments are
// common/greylist.hpp. What this file adds are the two ways of answering without the script,
// each of which must give the answer the script would have given:
//
// 1. A remembered pass (greylist_memo.hpp): no Redis at all. Safe across instances because a
//    pass is final until its key expires (pass_ttl): another policyd, or the milter, can only
//    add passes, never take one back. What it costs is the TTL refresh the script would have
//    made, at most once per hold period (60 s); a key deleted by hand takes effect here within
//    that period. Only passes are remembered: a new or early triplet always asks Redis.
//
// 2. First sight (greylist_first_sight_command): SET <triplet> f<now> NX GET EX <retry_window>,
//    which writes exactly what the script writes for a new triplet and says whether it was new.
//    Safe across instances because NX makes the write atomic in Redis: of two policyd seeing the
//    same new triplet at once, one writes, the other reads the record and runs the script, as it
//    would have after the first script call. Its reply means:
//      nil, and the client below auto_allow_clients (or auto-allow off): {defer_new, delay};
//      nil, and the client at the threshold or its count unknown: the script could allow the
//        client, and would then write no triplet record, so the record just written is
//        deleted (DEL, in the write before the script's) and the script decides;
//      a value (seen before) or an error: the script decides. A syntax error means a Redis
//        before 7.0 (no NX with GET): first sight is off for 10 minutes, then tried again, so
//        an upgraded Redis, or the primary back after a failover to an old replica, gets it back
//        without a restart.
//    The client's count is SCARD <client>, sent in the same write as the SET, so still one round
//    trip; its reply arrives first. The script reads the same count itself when it runs.
//
// A replay (Postfix retries a request once) is harmless: every write is one the script would
// have made for the same triplet at that time.
//
// Threading: policyd's io thread owns a GreylistStore and calls check() there. The callback is
// called exactly once: inside check() for a remembered pass, otherwise from a Redis callback.
// The store must outlive the Redis client's callbacks (it lives in the Handler, as the client).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "common/clock.hpp"
#include "common/config.hpp"
#include "common/greylist.hpp"
#include "common/redis/redis.hpp"
#include "policyd/greylist_memo.hpp"

namespace postwarden::policy {

class GreylistStore {
  public:
    using Done = std::function<void(std::optional<GreylistOutcome>)>;

    explicit GreylistStore(redis::Client& redis);

    // A template only so that a remembered pass, the busiest path, answers without wrapping
    // `done` in a std::function (an allocation per request).
    template <class Callback>
    void check(GreylistKeys keys, const std::shared_ptr<const Config>& config, Callback&& done) {
        if (auto remembered = memo_.recall(keys, *config, unix_now_ms())) return done(remembered);
        ask(std::move(keys), config, Done(std::forward<Callback>(done)));
    }

  private:
    struct Ask;  // one check() that went to Redis

    void ask(GreylistKeys keys, const std::shared_ptr<const Config>& config, Done done);
    void first_sight(std::shared_ptr<Ask> a);
    void run_script(std::shared_ptr<Ask> a);
    void first_sight_refused(const std::string& error);

    redis::Client& redis_;
    redis::Script script_;
    GreylistMemo memo_;
    std::chrono::steady_clock::time_point first_sight_off_until_{};
};

}  // namespace postwarden::policy
