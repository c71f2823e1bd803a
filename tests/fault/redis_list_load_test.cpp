// redis_list_load_test.cpp — postwarden-policyd under load from 32 connections while a large
// block list (10^5 and 10^6 members) is edited with redis-cli: every request that misses the
// edited list must still be answered with the lists applied (never the fail-open DUNNO of a
// Redis that did not answer), the edit must take effect at once, and the list must come back
// into the cache. Prints how long the load took and what policyd's memory grew by.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <thread>

#include "tests/fault/load.hpp"
#include "tests/fixtures/dns_server.hpp"
#include "tests/fixtures/policyd_process.hpp"
#include "tests/fixtures/redis_server.hpp"

using namespace postwarden;
using namespace postwarden::test;
using namespace std::chrono_literals;

namespace {

constexpr int timeout_ms = 300;
const std::string greylisted = "DEFER_IF_PERMIT 4.7.1 Greylisted, please try again in ";
const std::string zone = "sender.fault.test A 192.0.2.250\n";
const std::string block_sender = "pw:block:sender";

std::string config_for(const Endpoint& redis, DnsServer& dns) {
    return "[redis]\naddress = " + redis.to_string() +
           "\ntimeout_ms = " + std::to_string(timeout_ms) +
           "\n[dns]\nnameservers = " + dns.nameserver() +
           "\ntimeout_ms = 500\n[quota]\nlimits = 100000/3600\nauto_block = 0\n";
}

// n members that no request names, in batches of 10,000 per SADD.
void fill(RedisServer& redis, const std::string& key, int n) {
    for (int from = 0; from < n; from += 10000) {
        std::vector<std::string> argv{"SADD", key};
        for (int i = from; i < std::min(n, from + 10000); ++i)
            argv.push_back("member" + std::to_string(i) + "@bulk.example");
        redis.run(argv);
    }
}

long status_kib(pid_t pid, const std::string& field) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
    return -1;
}

// The members and milliseconds of the last "list <key> cached" line of the log, or -1s.
std::pair<long, long> last_load(const std::string& log) {
    const std::string mark = "list " + block_sender + " cached: ";
    auto at = log.rfind(mark);
    if (at == std::string::npos) return {-1, -1};
    const char* p = log.c_str() + at + mark.size();
    long members = std::strtol(p, nullptr, 10);
    auto ms_at = log.find(" read in ", at);
    if (ms_at == std::string::npos) return {members, -1};
    return {members, std::strtol(log.c_str() + ms_at + 9, nullptr, 10)};
}

// Waits up to `limit` for condition().
template <typename Condition>
bool wait_for(Condition condition, std::chrono::milliseconds limit) {
    auto deadline = steady::now() + limit;
    while (!condition() && steady::now() < deadline)
        std::this_thread::sleep_for(100ms);
    return condition();
}

void edit_under_load(int members) {
    RedisServer redis;
    fill(redis, block_sender, members);
    redis.run({"SADD", block_sender, "s0@sender.fault.test"});  // connection 0's sender
    DnsServer dns(zone);
    PolicydProcess policyd(config_for(redis.endpoint(), dns));
    const pid_t pid = policyd.process().pid();
    const long rss_before = status_kib(pid, "VmRSS");
    PolicyLoad load(policyd.port(), {32, 3, 30ms});
    // The first misses load the list in the background; wait until it is in memory.
    auto loaded = [&] { return last_load(policyd.log()).first > members; };
    CHECK(wait_for(loaded, 20s));
    const auto first = last_load(policyd.log());

    // The edit: connection 1's sender is blocked from now on. Every request misses the list
    // until it is read again.
    redis.run({"SADD", block_sender, "s1@sender.fault.test"});
    const auto edited = steady::now();
    std::this_thread::sleep_for(200ms);  // the reload is under way, under load
    auto reloaded = [&] { return last_load(policyd.log()).first == members + 2; };
    const bool back_in_memory = wait_for(reloaded, 10s);
    std::this_thread::sleep_for(1000ms);
    load.stop();
    CHECK(back_in_memory);
    const auto second = last_load(policyd.log());

    std::size_t inbound = 0, fail_open = 0, wrong = 0, after_edit = 0;
    for (const auto& r : load.replies()) {
        if (r.outbound) continue;
        ++inbound;
        const bool blocked = r.action.rfind("REJECT", 0) == 0;
        if (r.action == "DUNNO") ++fail_open;  // Redis did not answer: no lists, no greylisting
        bool should_block = r.connection == 0 || (r.connection == 1 && r.sent > edited);
        // A request of connection 1 sent with the edit under way may go either way.
        if (r.connection == 1 && r.sent <= edited + 50ms && r.answered >= edited) continue;
        if (should_block != blocked || (!blocked && r.action.rfind(greylisted, 0) != 0)) {
            UNSCOPED_INFO("connection " << r.connection << ": " << r.action);
            ++wrong;
        }
        if (r.sent > edited) ++after_edit;
    }
    const long rss_after = status_kib(pid, "VmRSS"), peak = status_kib(pid, "VmHWM");
    WARN(members << " members: first load " << first.second << " ms, reload under load "
                 << second.second << " ms; policyd RSS " << rss_before / 1024 << " MiB before, "
                 << rss_after / 1024 << " MiB after, peak " << peak / 1024 << " MiB; " << inbound
                 << " inbound replies, " << after_edit << " after the edit, " << fail_open
                 << " fail-open");
    CHECK(fail_open == 0);
    CHECK(wrong == 0);
    CHECK(after_edit >= 100);
    CHECK(policyd.process().running());
}

}  // namespace

TEST_CASE("a block list of 100,000 members edited under load stays applied", "[fault][lists]") {
    edit_under_load(100000);
}

TEST_CASE("a block list of a million members edited under load stays applied", "[fault][lists]") {
    edit_under_load(1000000);
}
