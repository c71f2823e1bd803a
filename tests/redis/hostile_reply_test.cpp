// hostile_reply_test.cpp — the client against a peer that answers every command with hostile
// bytes (a compromised Redis, or a man in the middle on a plain TCP link): arrays announced as
// millions of elements and nested, strings announced as gigabytes and streamed. The command
// fails, the connection is dropped, and the process' peak memory stays small.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <catch2/catch.hpp>
#include <fstream>
#include <memory>

#include "common/redis/redis.hpp"
#include "tests/redis/support.hpp"

using namespace postwarden;
using namespace postwarden::test;
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

// Answers every read with `reply`, then `flood` MiB of 'x' (the body of an announced string);
// keeps the connection open afterwards (silence, not EOF).
class HostileRedis {
  public:
    HostileRedis(asio::io_context& io, std::string reply, std::size_t flood_mib = 0)
        : reply_(std::move(reply)),
          flood_mib_(flood_mib),
          chunk_(std::size_t{1} << 20, 'x'),
          acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
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
            asio::async_write(*socket, asio::buffer(reply_), [this, socket](auto error, auto) {
                if (!error) flood(socket, flood_mib_);
            });
            serve(socket);
        });
    }

    void flood(std::shared_ptr<tcp::socket> socket, std::size_t left) {
        if (left == 0) return;
        asio::async_write(*socket, asio::buffer(chunk_), [this, socket, left](auto error, auto) {
            if (!error) flood(socket, left - 1);
        });
    }

    std::string reply_;
    std::size_t flood_mib_;
    std::string chunk_;
    tcp::acceptor acceptor_;
    std::vector<std::shared_ptr<tcp::socket>> sockets_;
    char buffer_[4096];
};

// The process' peak resident memory in MiB since the last reset_peak_rss() (VmHWM).
long peak_rss_mib() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6)) / 1024;
    return -1;
}

void reset_peak_rss() {
    std::ofstream("/proc/self/clear_refs") << "5";  // resets VmHWM to the current RSS
}

struct Outcome {
    redis::Reply reply;
    long peak_growth_mib;
};

// Sends one command to a peer answering `reply` (and a flood), through a reconnect or two.
Outcome answer_with(const std::string& reply, std::size_t flood_mib = 0, int timeout_ms = 100) {
    asio::io_context io;
    HostileRedis fake(io, reply, flood_mib);
    redis::Client client(io, options_for(fake.endpoint(), timeout_ms));
    client.start();
    REQUIRE(run_until(io, [&] { return client.connected(); }));
    reset_peak_rss();
    const long before = peak_rss_mib();
    auto answer = call(io, client, {"SMEMBERS", "pw:block:sender"});
    REQUIRE(answer);
    // The connection is dropped (at once, or as stalled) and reopened; a second command meets
    // the same bytes on the new connection.
    REQUIRE(run_until(io, [&] { return fake.accepted >= 2 && client.connected(); }));
    auto again = call(io, client, {"PING"});
    REQUIRE(again);
    CHECK_FALSE(again->ok);
    return {*answer, peak_rss_mib() - before};
}

std::string nested(const std::string& header, int depth) {
    std::string out;
    for (int i = 0; i < depth; ++i)
        out += header;
    return out;
}

}  // namespace

TEST_CASE("hostile replies: arrays announced as ten million elements, nested, allocate nothing",
          "[redis][hostile]") {
    auto outcome = answer_with(nested("*10000000\r\n", 3));
    CHECK_FALSE(outcome.reply.ok);
    CHECK(outcome.reply.error.find("protocol error: reply announces 10000000 elements") == 0);
    CHECK(outcome.peak_growth_mib < 32);
}

TEST_CASE("hostile replies: arrays announced within the element limit reserve only what arrived",
          "[redis][hostile]") {
    // Seven levels of four million elements each: the deepest nesting hiredis accepts, every
    // count under the limit, 80 bytes on the wire. Nothing more arrives: the command times out.
    auto outcome = answer_with(nested("*4000000\r\n", 7));
    CHECK_FALSE(outcome.reply.ok);
    CHECK(outcome.reply.error == "timeout");
    CHECK(outcome.peak_growth_mib < 32);
}

TEST_CASE("hostile replies: a string announced as 2 GB and streamed is cut off at the limit",
          "[redis][hostile]") {
    // A timeout long enough for 32 MiB to cross a loaded machine's loopback.
    auto outcome = answer_with("$2000000000\r\n", 160, 2000);
    CHECK_FALSE(outcome.reply.ok);
    CHECK(outcome.reply.error.find("protocol error: reply has a string longer than") == 0);
#if !defined(__SANITIZE_ADDRESS__)
    // Under ASan the RSS says nothing about our buffers: its quarantine keeps freed memory.
    CHECK(outcome.peak_growth_mib < 100);  // the 32 MiB limit, buffered, and no more
#endif
}

TEST_CASE("hostile replies: nesting deeper than seven levels is a protocol error",
          "[redis][hostile]") {
    auto outcome = answer_with(nested("*1\r\n", 9) + ":1\r\n");
    CHECK_FALSE(outcome.reply.ok);
    CHECK(outcome.reply.error.find("protocol error") == 0);
}
