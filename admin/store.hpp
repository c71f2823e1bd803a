// store.hpp — the admin CLI's Redis: the shared blocking client (common/redis/redis_sync.hpp)
// opened on first use, so that bad input is refused before any connection is made, and Redis
// failures turned into the CLI's exit codes. The password from [redis] password is only ever given
// to the client's AUTH; nothing here prints it.
//
// Entry points: Store (run, batch, key), Failure, the exit codes.
// Threading: the CLI's main thread (SyncRedis runs its own io thread underneath).
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.hpp"
#include "common/redis/redis.hpp"

namespace postwarden {
class SyncRedis;
}

namespace postwarden::admin {

// Exit codes (README "Admin CLI"): a temporary failure (3) is never confused with bad input (2).
enum ExitCode : int {
    exit_ok = 0,
    exit_not_found = 1,    // nothing to do: not listed, not blocked
    exit_usage = 2,        // bad command line, configuration or member: nothing was changed
    exit_unavailable = 3,  // Redis unreachable or did not answer in time: try again later
    exit_redis_error = 4,  // Redis answered with an error (WRONGTYPE, NOPERM ...)
};

// What stops a command: the message for stderr and the exit code.
struct Failure : std::runtime_error {
    int code;
    Failure(int c, const std::string& message) : std::runtime_error(message), code(c) {}
};

class Store {
  public:
    explicit Store(const Config& config);
    ~Store();
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    // One command's answer; throws Failure (exit_unavailable without an answer, exit_redis_error
    // for an error reply).
    redis::Value run(std::vector<std::string> argv);
    // On a Redis Cluster, the masters, and a command run on one of them (SCAN sees one node's
    // keys); one, the Redis, without a cluster. Throws like run().
    std::size_t masters();
    redis::Value run_on(std::size_t master, std::vector<std::string> argv);
    // Several commands in one round trip, their answers in order; throws like run().
    std::vector<redis::Value> batch(std::vector<std::vector<std::string>> commands);

    // [redis] prefix + name.
    std::string key(std::string_view name) const {
        return config_.redis.prefix + std::string(name);
    }

  private:
    SyncRedis& client();  // connects on first use; throws Failure when Redis does not answer
    const Config& config_;
    std::unique_ptr<SyncRedis> client_;
};

}  // namespace postwarden::admin
