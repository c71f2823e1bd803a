// client_test.cpp — the Redis client through Sentinels, against real redis-servers and a
// scripted Sentinel (a loopback server that names whichever node the test says, and pushes
// +switch-master when told), so that each rule is tested on its own, at once: the Sentinels are
// asked in turn past one that is down and one that refuses the command; an address that is a
// replica is refused by ROLE; a -READONLY reply is no answer and sends the client back to the
// Sentinels; +switch-master moves the client without waiting.
#include <catch2/catch.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "common/redis/redis.hpp"
#include "tests/fixtures/process.hpp"
#include "tests/fixtures/redis_server.hpp"
#include "tests/redis/support.hpp"

using namespace postwarden;
using namespace postwarden::test;

namespace {

std::string bulk(const std::string& s) {
    return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
}

// Answers SENTINEL get-master-addr-by-name with 127.0.0.1:<master port>, SUBSCRIBE and PING as
// a Sentinel does; push_switch() sends +switch-master to every subscribed connection. Commands
// are recognised by their names in what arrives: enough for the client's few.
class ScriptedSentinel {
  public:
    explicit ScriptedSentinel(unsigned short master) : master_(master), port_(free_port()) {
        listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(port_);
        REQUIRE(bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(listen(listener_, 16) == 0);
        thread_ = std::thread([this] { run(); });
    }
    ~ScriptedSentinel() {
        stop_ = true;
        thread_.join();
        for (int fd : clients_)
            close(fd);
        close(listener_);
    }

    Endpoint endpoint() const { return Endpoint{Endpoint::Kind::inet, "127.0.0.1", port_, ""}; }
    void name(unsigned short master) { master_ = master; }
    void push_switch(unsigned short from, unsigned short to) {
        push("mymaster 127.0.0.1 " + std::to_string(from) + " 127.0.0.1 " + std::to_string(to));
    }
    void push(const std::string& payload) {
        std::lock_guard lock(mutex_);
        auto message = "*3\r\n" + bulk("message") + bulk("+switch-master") + bulk(payload);
        for (int fd : subscribed_)
            (void)!::send(fd, message.data(), message.size(), MSG_NOSIGNAL);
    }
    int questions() const { return questions_; }

  private:
    void run() {
        while (!stop_) {
            std::vector<pollfd> fds{{listener_, POLLIN, 0}};
            {
                std::lock_guard lock(mutex_);
                for (int fd : clients_)
                    fds.push_back({fd, POLLIN, 0});
            }
            poll(fds.data(), fds.size(), 20);
            if (fds[0].revents & POLLIN) {
                int fd = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
                std::lock_guard lock(mutex_);
                if (fd >= 0) clients_.push_back(fd);
            }
            for (std::size_t i = 1; i < fds.size(); ++i)
                if (fds[i].revents & (POLLIN | POLLHUP)) serve(fds[i].fd);
        }
    }
    void serve(int fd) {
        char buffer[4096];
        auto n = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
        if (n <= 0) {
            std::lock_guard lock(mutex_);
            std::erase(clients_, fd);
            std::erase(subscribed_, fd);
            close(fd);
            return;
        }
        std::string text(buffer, static_cast<std::size_t>(n)), reply;
        if (text.find("get-master-addr-by-name") != std::string::npos) {
            ++questions_;
            reply = "*2\r\n" + bulk("127.0.0.1") + bulk(std::to_string(master_.load()));
        } else if (text.find("SUBSCRIBE") != std::string::npos) {
            reply = "*3\r\n" + bulk("subscribe") + bulk("+switch-master") + ":1\r\n";
            std::lock_guard lock(mutex_);
            subscribed_.push_back(fd);
        } else if (text.find("PING") != std::string::npos) {
            reply = "*2\r\n" + bulk("pong") + bulk("");
        } else {
            reply = "-ERR unknown command\r\n";
        }
        std::lock_guard lock(mutex_);
        (void)!::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
    }

    std::atomic<unsigned short> master_;
    unsigned short port_;
    int listener_ = -1;
    std::atomic<bool> stop_{false};
    std::atomic<int> questions_{0};
    std::mutex mutex_;
    std::vector<int> clients_, subscribed_;
    std::thread thread_;
};

redis::Options through(const std::vector<Endpoint>& sentinels) {
    redis::Options o;
    o.sentinels = sentinels;
    o.master_name = "mymaster";
    o.timeout_ms = 250;
    return o;
}

Endpoint nowhere() {
    return Endpoint{Endpoint::Kind::inet, "127.0.0.1", free_port(), ""};  // nothing listens
}

}  // namespace

TEST_CASE("sentinel: the Sentinels are asked in turn past one that is down and one that refuses",
          "[ha][client]") {
    RedisServer master, not_a_sentinel;
    ScriptedSentinel sentinel(master.port());
    boost::asio::io_context io;
    redis::Client client(io, through({nowhere(), not_a_sentinel.endpoint(), sentinel.endpoint()}));
    client.start();
    REQUIRE(run_until(io, [&] { return client.connected(); }));
    REQUIRE(client.master()->port == master.port());
    auto reply = call(io, client, {"SET", "k", "v"});
    REQUIRE(reply);
    CHECK(reply->ok);
    CHECK(master.run({"GET", "k"}).str == "v");
}

TEST_CASE(
    "sentinel: an address that is a replica is refused by ROLE, and a READONLY reply is no "
    "answer and sends the client back to the Sentinels",
    "[ha][client]") {
    RedisServer a({}, {"--shutdown-timeout", "0"}), b({}, {"--shutdown-timeout", "0"});
    ScriptedSentinel sentinel(a.port());
    boost::asio::io_context io;
    redis::Client client(io, through({sentinel.endpoint()}));
    client.start();
    REQUIRE(run_until(io, [&] { return client.connected(); }));

    // a becomes a replica under the client: the write is refused, and is no success
    REQUIRE(a.run({"REPLICAOF", "127.0.0.1", std::to_string(b.port())}).str == "OK");
    auto reply = call(io, client, {"SET", "k", "on-a-replica"});
    REQUIRE(reply);
    CHECK_FALSE(reply->ok);
    CHECK(reply->error.find("READONLY") != std::string::npos);
    // the Sentinel still names a: ROLE says slave, so the client stays away from it
    const int asked = sentinel.questions();
    REQUIRE(run_until(io, [&] { return sentinel.questions() > asked + 1; }));
    CHECK_FALSE(client.connected());
    // the Sentinel names b: the client goes there, and writes land on b
    sentinel.name(b.port());
    REQUIRE(run_until(
        io, [&] { return client.connected(); }, 5s));
    REQUIRE(client.master()->port == b.port());
    reply = call(io, client, {"SET", "k", "on-b"});
    REQUIRE(reply);
    CHECK(reply->ok);
    CHECK(b.run({"GET", "k"}).str == "on-b");
}

TEST_CASE("sentinel: +switch-master moves the client to the new master at once", "[ha][client]") {
    RedisServer a({}, {"--shutdown-timeout", "0"}), b({}, {"--shutdown-timeout", "0"});
    ScriptedSentinel sentinel(a.port());
    boost::asio::io_context io;
    redis::Client client(io, through({sentinel.endpoint()}));
    client.start();
    REQUIRE(run_until(io, [&] { return client.connected(); }));
    run_for(io, 300ms);  // the watch subscribes
    // a is still a master that accepts writes: only the announcement moves the client
    sentinel.name(b.port());
    auto announced = steady::now();
    sentinel.push_switch(a.port(), b.port());
    REQUIRE(run_until(io, [&] { return client.connected() && client.master()->port == b.port(); }));
    CHECK(elapsed_ms(announced) < 500);
    auto reply = call(io, client, {"SET", "k", "after-switch"});
    REQUIRE(reply);
    CHECK(reply->ok);
    CHECK(b.run({"GET", "k"}).str == "after-switch");
    CHECK(a.run({"GET", "k"}).type == redis::Value::Type::nil);
    // a switch about another master name, or a malformed one, changes nothing
    const auto from = " 127.0.0.1 " + std::to_string(b.port()) + " 127.0.0.1 ";
    sentinel.push("othermaster" + from + std::to_string(a.port()));
    sentinel.push("mymaster" + from + "not-a-port");
    sentinel.push("mymaster" + from + "0");
    sentinel.push("mymaster 127.0.0.1");
    sentinel.push("mymaster" + from + std::to_string(a.port()) + " more");
    run_for(io, 300ms);
    CHECK(client.connected());
    CHECK(client.master()->port == b.port());
}
