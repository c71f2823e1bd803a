// redis_sync.hpp — Redis for callers that must block until they have an answer: the milter's
// callbacks, which run on libmilter's threads (one per SMTP connection), and the admin CLI.
//
// Entry points: SyncRedis (command, eval).
//
// Threading: one dedicated thread runs an io_context with the shared asynchronous redis::Client
// (common/redis/redis.hpp). command()/eval() may be called from any thread: they post the request
// to that thread and wait on a future. The client answers every command within [redis] timeout_ms
// (twice that for an eval that meets NOSCRIPT); the wait has its own ceiling a little beyond,
// so a caller is never blocked longer than about 2 × timeout_ms + 100 ms whatever happens.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/redis/redis.hpp"

namespace postwarden {

class SyncRedis {
  public:
    explicit SyncRedis(const redis::Options& options);
    ~SyncRedis();  // stops the client and joins the thread
    SyncRedis(const SyncRedis&) = delete;
    SyncRedis& operator=(const SyncRedis&) = delete;

    redis::Reply command(std::vector<std::string> argv) const;
    // Several commands issued in one turn of the io loop, so they share one write and one round
    // trip; the replies in order.
    std::vector<redis::Reply> batch(std::vector<std::vector<std::string>> commands) const;
    redis::Reply eval(const redis::Script& script, std::vector<std::string> keys,
                      std::vector<std::string> args) const;
    // On a Redis Cluster ([redis] cluster), the number of masters, and a command sent to one of
    // them rather than to its key's slot: what SCAN, which walks one node's keys, needs. Without
    // a cluster there is one, the Redis.
    std::size_t masters() const;
    redis::Reply command_on(std::size_t master, std::vector<std::string> argv) const;

  private:
    struct State;
    std::unique_ptr<State> state_;
    std::thread thread_;
    int wait_ms_;
};

}  // namespace postwarden
