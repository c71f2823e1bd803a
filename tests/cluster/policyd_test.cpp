// policyd_test.cpp — postwarden-policyd on a Redis Cluster while the slots of the users it
// counts move between masters: every reply is the one a healthy Redis gives (fail_mode closed,
// so a failed Redis call would show as a defer), the log has no Redis error, and each user's
// quota window holds exactly the recipients accepted.
#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "common/redis/cluster.hpp"
#include "tests/fixtures/policyd_process.hpp"
#include "tests/fixtures/redis_server.hpp"

using namespace postwarden;
using namespace postwarden::test;

namespace {

Attributes rcpt(const std::string& login, const std::string& instance, int n) {
    auto a = inbound("198.51.100.7", login, "r" + std::to_string(n) + "@elsewhere.example");
    a["sasl_username"] = login;
    a["instance"] = instance;
    return a;
}

}  // namespace

TEST_CASE("policyd under load while slots move: no error, every recipient counted once",
          "[cluster]") {
    RedisCluster cluster;
    PolicydProcess policyd("[redis]\ncluster = yes\naddress = " + cluster.addresses() +
                           "\ntimeout_ms = 1000\n[policyd]\nfail_mode = closed\n[dns]\n"
                           "nameservers = 127.0.0.1:" +
                           std::to_string(free_port()) +
                           "\ntimeout_ms = 200\n[quota]\nlimits = 100000/3600\n");
    constexpr int users = 12, threads = 4;
    auto login = [](int u) { return "u" + std::to_string(u) + "@example.com"; };
    std::atomic<bool> stop{false};
    std::mutex mutex;
    std::map<std::string, long> accepted;  // login → recipients answered DUNNO at RCPT
    std::vector<std::string> unexpected;
    std::vector<std::thread> load;
    for (int t = 0; t < threads; ++t)
        load.emplace_back([&, t] {
            PolicyClient client(policyd.port());
            for (int m = 0; !stop; ++m) {
                auto user = login((t + m * threads) % users);
                auto instance = "i" + std::to_string(t) + "." + std::to_string(m);
                auto reply = client.ask(rcpt(user, instance, m));
                auto end = rcpt(user, instance, m);
                end.erase("recipient");
                end["protocol_state"] = "END-OF-MESSAGE";
                end["recipient_count"] = "1";
                auto committed = client.ask(end);
                std::lock_guard<std::mutex> lock(mutex);
                if (reply == "DUNNO") ++accepted[user];
                if (reply != "DUNNO" || committed != "DUNNO")
                    unexpected.push_back(user + ": " + reply + " / " + committed);
            }
        });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    for (int u = 0; u < users; ++u) {
        int slot = redis::key_slot("{" + login(u) + "}");
        cluster.move_slot(slot, (cluster.owner_index(slot) + 1) % cluster.size());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    stop = true;
    for (auto& t : load)
        t.join();

    for (std::size_t i = 0; i < unexpected.size() && i < 10; ++i)
        UNSCOPED_INFO(unexpected[i]);
    CHECK(unexpected.empty());
    long total = 0;
    for (const auto& [user, count] : accepted) {
        INFO(user);
        long used = 0;
        for (const auto& v : cluster.run({"HVALS", "pw:quota:{" + user + "}:used:3600"}).elements)
            used += std::stol(v.str);
        CHECK(used == count);
        total += count;
    }
    CHECK(total > 100);
    auto log = policyd.log();
    CHECK(log.find("unavailable") == std::string::npos);
    CHECK(log.find("CROSSSLOT") == std::string::npos);
    CHECK(log.find("MOVED") == std::string::npos);
}
