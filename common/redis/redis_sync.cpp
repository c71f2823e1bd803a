// redis_sync.cpp — the blocking façade over redis::Client; see redis_sync.hpp.
#include "common/redis/redis_sync.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <future>

#include "common/redis/cluster.hpp"

namespace postwarden {

struct SyncRedis::State {
    boost::asio::io_context io;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{
        io.get_executor()};
    redis::Client client;
    explicit State(const redis::Options& options) : client(io, options) {}
};

SyncRedis::SyncRedis(const redis::Options& options)
    : state_(std::make_unique<State>(options)), wait_ms_(2 * options.timeout_ms + 100) {
    boost::asio::post(state_->io, [s = state_.get()] { s->client.start(); });
    thread_ = std::thread([s = state_.get()] { s->io.run(); });
}

SyncRedis::~SyncRedis() {
    boost::asio::post(state_->io, [s = state_.get()] {
        s->client.stop();
        s->work.reset();
    });
    thread_.join();
}

namespace {

// Waits for the promise the io thread fulfils; a missing answer is a Reply that says so.
redis::Reply wait(std::future<redis::Reply>& future, int wait_ms) {
    if (future.wait_for(std::chrono::milliseconds(wait_ms)) != std::future_status::ready)
        return redis::Reply{false, "no answer in time", {}};
    return future.get();
}

}  // namespace

redis::Reply SyncRedis::command(std::vector<std::string> argv) const {
    auto promise = std::make_shared<std::promise<redis::Reply>>();
    auto future = promise->get_future();
    boost::asio::post(state_->io, [s = state_.get(), promise, argv = std::move(argv)]() mutable {
        s->client.command(std::move(argv),
                          [promise](redis::Reply r) { promise->set_value(std::move(r)); });
    });
    return wait(future, wait_ms_);
}

std::vector<redis::Reply> SyncRedis::batch(std::vector<std::vector<std::string>> commands) const {
    std::vector<std::shared_ptr<std::promise<redis::Reply>>> promises;
    std::vector<std::future<redis::Reply>> futures;
    for (std::size_t i = 0; i < commands.size(); ++i) {
        promises.push_back(std::make_shared<std::promise<redis::Reply>>());
        futures.push_back(promises.back()->get_future());
    }
    boost::asio::post(
        state_->io, [s = state_.get(), promises, commands = std::move(commands)]() mutable {
            for (std::size_t i = 0; i < commands.size(); ++i)
                s->client.command(std::move(commands[i]), [p = promises[i]](redis::Reply r) {
                    p->set_value(std::move(r));
                });
        });
    std::vector<redis::Reply> replies;
    for (auto& f : futures)
        replies.push_back(wait(f, wait_ms_));
    return replies;
}

std::size_t SyncRedis::masters() const {
    auto promise = std::make_shared<std::promise<std::size_t>>();
    auto future = promise->get_future();
    boost::asio::post(state_->io, [s = state_.get(), promise] {
        auto* cluster = s->client.cluster();
        promise->set_value(cluster ? cluster->masters().size() : 1);
    });
    return future.get();
}

redis::Reply SyncRedis::command_on(std::size_t master, std::vector<std::string> argv) const {
    auto promise = std::make_shared<std::promise<redis::Reply>>();
    auto future = promise->get_future();
    boost::asio::post(
        state_->io, [s = state_.get(), master, promise, argv = std::move(argv)]() mutable {
            auto done = [promise](redis::Reply r) { promise->set_value(std::move(r)); };
            auto* cluster = s->client.cluster();
            if (!cluster) return s->client.command(std::move(argv), done);
            auto masters = cluster->masters();
            if (master >= masters.size()) return done(redis::Reply{false, "no such master", {}});
            masters[master].client->command(std::move(argv), done);
        });
    return wait(future, wait_ms_);
}

redis::Reply SyncRedis::eval(const redis::Script& script, std::vector<std::string> keys,
                             std::vector<std::string> args) const {
    auto promise = std::make_shared<std::promise<redis::Reply>>();
    auto future = promise->get_future();
    boost::asio::post(state_->io, [s = state_.get(), &script, promise, keys = std::move(keys),
                                   args = std::move(args)]() mutable {
        s->client.eval(script, std::move(keys), std::move(args),
                       [promise](redis::Reply r) { promise->set_value(std::move(r)); });
    });
    return wait(future, wait_ms_);
}

}  // namespace postwarden
