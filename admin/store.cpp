// store.cpp — Store: connect on first use, wait for the connection, map failures to exit codes;
// see store.hpp.
#include "admin/store.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>

#include "common/redis/redis_sync.hpp"

namespace postwarden::admin {

namespace {

// The asynchronous client answers "not connected" at once until its first connection is up, so
// the CLI waits for that (the client's own connect + AUTH deadline, at least 1 s; it retries a
// refused connection meanwhile, 100 ms doubling, so a Redis that is just restarting still
// answers). The reason of a failure is logged by the client on stderr.
// Through Sentinels, finding the master first may take each Sentinel timeout_ms to connect
// and timeout_ms to answer.
int connect_wait_ms(const Config& config) {
    const int sentinels = static_cast<int>(config.redis.sentinels.size());
    return std::max(1000, 8 * config.redis.timeout_ms) + 100 +
           2 * sentinels * config.redis.timeout_ms;
}

std::string where(const Config& config) {
    if (!config.redis.sentinels.empty())
        return "Redis master '" + config.redis.master_name + "' (through the Sentinels)";
    return "Redis at " + config.redis.address.to_string();
}

void check(const redis::Reply& reply, const Config& config) {
    if (!reply.ok) throw Failure(exit_unavailable, where(config) + ": " + reply.error);
    if (reply.value.is_error())
        throw Failure(exit_redis_error, where(config) + " refused: " + reply.value.str);
}

}  // namespace

Store::Store(const Config& config) : config_(config) {}
Store::~Store() = default;

SyncRedis& Store::client() {
    if (client_) return *client_;
    auto ready = std::make_shared<std::promise<void>>();
    auto future = ready->get_future();
    auto once = std::make_shared<std::atomic<bool>>(false);
    auto options = redis::options_from(config_.redis);
    options.on_ready = [ready, once] {
        if (!once->exchange(true)) ready->set_value();
    };
    client_ = std::make_unique<SyncRedis>(options);
    auto wait = std::chrono::milliseconds(connect_wait_ms(config_));
    if (future.wait_for(wait) != std::future_status::ready)
        throw Failure(exit_unavailable, where(config_) + " is unreachable (no connection within " +
                                            std::to_string(wait.count()) + " ms)");
    return *client_;
}

redis::Value Store::run(std::vector<std::string> argv) {
    auto reply = client().command(std::move(argv));
    check(reply, config_);
    return std::move(reply.value);
}

std::size_t Store::masters() {
    return client().masters();
}

redis::Value Store::run_on(std::size_t master, std::vector<std::string> argv) {
    auto reply = client().command_on(master, std::move(argv));
    check(reply, config_);
    return std::move(reply.value);
}

std::vector<redis::Value> Store::batch(std::vector<std::vector<std::string>> commands) {
    auto replies = client().batch(std::move(commands));
    std::vector<redis::Value> out;
    for (auto& r : replies) {
        check(r, config_);
        out.push_back(std::move(r.value));
    }
    return out;
}

}  // namespace postwarden::admin
