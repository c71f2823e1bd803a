// selector_cache.cpp — the selector SETs through a ListCache on a thread of its own; see
// selector_cache.hpp.
#include "milter/selector_cache.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <future>

#include "common/redis/list_cache.hpp"
#include "common/redis/redis.hpp"

namespace postwarden::milter {

namespace {

ListCacheSettings selector_settings() {
    ListCacheSettings s;
    s.max_bytes = std::size_t{16} << 20;  // a selector SET is a few short names
    s.tracked = {"dkim:selectors:"};
    return s;
}

redis::Options with_ready(redis::Options o, ListCache** cache) {
    o.on_ready = [cache] {
        if (*cache) (*cache)->data_connection_ready();
    };
    return o;
}

}  // namespace

struct SelectorCache::State {
    boost::asio::io_context io;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{
        io.get_executor()};
    ListCache* cache_ptr = nullptr;  // for the data client's on_ready, set once cache exists
    redis::Client data;
    ListCache cache;
    State(const redis::Options& options, std::string prefix)
        : data(io, with_ready(options, &cache_ptr)),
          cache(io, data, options, std::move(prefix), selector_settings()) {
        cache_ptr = &cache;
    }
};

SelectorCache::SelectorCache(redis::Options options, std::string prefix)
    : wait_ms_(2 * options.timeout_ms + 100) {
    options.latency = nullptr;  // the milter's Redis metrics measure its own client
    options.failures = nullptr;
    state_ = std::make_unique<State>(options, std::move(prefix));
    boost::asio::post(state_->io, [s = state_.get()] {
        s->data.start();
        s->cache.start();
    });
    thread_ = std::thread([s = state_.get()] { s->io.run(); });
}

SelectorCache::~SelectorCache() {
    boost::asio::post(state_->io, [s = state_.get()] {
        s->cache.stop();
        s->data.stop();
        s->work.reset();
    });
    thread_.join();
}

std::optional<std::vector<std::vector<std::string>>> SelectorCache::members(
    const std::vector<std::string>& keys) const {
    using Answer = std::optional<std::vector<std::string>>;
    std::vector<std::shared_ptr<std::promise<Answer>>> promises;
    std::vector<std::future<Answer>> futures;
    for (std::size_t i = 0; i < keys.size(); ++i) {
        promises.push_back(std::make_shared<std::promise<Answer>>());
        futures.push_back(promises.back()->get_future());
    }
    boost::asio::post(state_->io, [s = state_.get(), promises, keys] {
        for (std::size_t i = 0; i < keys.size(); ++i)
            s->cache.members(keys[i], [p = promises[i]](bool ok, std::vector<std::string> m) {
                p->set_value(ok ? Answer(std::move(m)) : std::nullopt);
            });
    });
    std::vector<std::vector<std::string>> out;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms_);
    for (auto& f : futures) {
        if (f.wait_until(deadline) != std::future_status::ready) return std::nullopt;
        auto answer = f.get();
        if (!answer) return std::nullopt;
        out.push_back(std::move(*answer));
    }
    return out;
}

}  // namespace postwarden::milter
