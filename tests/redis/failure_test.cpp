// failure_test.cpp — the client against servers that misbehave, played by a fake Redis on
// 127.0.0.1 in the test's own io_context: garbage replies, no replies at all, nothing listening.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <catch2/catch.hpp>
#include <memory>

#include "common/redis/redis.hpp"
#include "tests/fixtures/process.hpp"
#include "tests/redis/support.hpp"

using namespace postwarden;
using namespace postwarden::test;
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {
// Accepts connections and either never answers or answers every read with a protocol error.
class FakeRedis {
  public:
    enum class Mode { silent, garbage };

    FakeRedis(asio::io_context& io, Mode mode)
        : mode_(mode), acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
        accept();
    }

    Endpoint endpoint() const {
        Endpoint ep;
        ep.host = "127.0.0.1";
        ep.port = acceptor_.local_endpoint().port();
        return ep;
    }

    int accepted = 0;

  private:
    void accept() {
        acceptor_.async_accept([this](auto error, tcp::socket socket) {
            if (error) return;
            ++accepted;
            serve(sockets_.emplace_back(std::make_shared<tcp::socket>(std::move(socket))));
            accept();
        });
    }

    void serve(std::shared_ptr<tcp::socket> socket) {
        socket->async_read_some(asio::buffer(buffer_), [this, socket](auto error, std::size_t) {
            if (error) return;
            if (mode_ == Mode::garbage)
                asio::write(*socket, asio::buffer("?garbage\r\n", 10), error);
            serve(socket);
        });
    }

    Mode mode_;
    tcp::acceptor acceptor_;
    std::vector<std::shared_ptr<tcp::socket>> sockets_;  // kept open: silence, not EOF
    char buffer_[4096];
};
}  // namespace

TEST_CASE("a protocol error drops the connection and it is reopened", "[redis]") {
    asio::io_context io;
    FakeRedis fake(io, FakeRedis::Mode::garbage);
    redis::Client client(io, options_for(fake.endpoint(), 1000));
    client.start();
    REQUIRE(run_until(io, [&] { return client.connected(); }));
    auto reply = call(io, client, {"PING"});
    CHECK_FALSE(reply->ok);
    CHECK(reply->error.rfind("protocol error", 0) == 0);
    REQUIRE(run_until(io, [&] { return fake.accepted >= 2 && client.connected(); }));
    CHECK(client.stats().disconnects == 1);
}

TEST_CASE("an unresponsive server is dropped after a few timeouts", "[redis]") {
    asio::io_context io;
    FakeRedis fake(io, FakeRedis::Mode::silent);
    redis::Client client(io, options_for(fake.endpoint(), 50));
    client.start();
    REQUIRE(run_until(io, [&] { return client.connected(); }));
    auto start = steady::now();
    auto reply = call(io, client, {"PING"});
    CHECK(reply->error == "timeout");
    CHECK(elapsed_ms(start) < 150);
    REQUIRE(run_until(io, [&] { return client.stats().disconnects == 1; }));
    double dropped_ms = elapsed_ms(start);
    CHECK(dropped_ms >= 1000);  // 8 timeouts, at least 1 s
    CHECK(dropped_ms < 1500);
    REQUIRE(run_until(io, [&] { return fake.accepted >= 2 && client.connected(); }));
}

TEST_CASE("an unanswered AUTH times out the handshake", "[redis]") {
    asio::io_context io;
    FakeRedis fake(io, FakeRedis::Mode::silent);
    auto options = options_for(fake.endpoint(), 50);
    options.password = "secret";
    redis::Client client(io, options);
    client.start();
    REQUIRE(run_until(io, [&] { return fake.accepted >= 2; }));  // gave up and tried again
    CHECK_FALSE(client.connected());
    CHECK(client.stats().connects == 0);
}

TEST_CASE("nothing listening: commands fail at once while retries go on", "[redis]") {
    asio::io_context io;
    Endpoint nowhere;
    nowhere.host = "127.0.0.1";
    nowhere.port = free_port();
    redis::Client client(io, options_for(nowhere));
    client.start();
    run_for(io, 300ms);
    auto start = steady::now();
    auto reply = call(io, client, {"PING"});
    CHECK(elapsed_ms(start) < 50);
    CHECK(reply->error == "not connected");
    client.stop();
    io.restart();
    io.run();  // nothing left: no retry timer survives stop()
}
