// policyd_failover_test.cpp — postwarden-policyd finding Redis through three Sentinels (one
// master, two replicas) under a steady load of quota and greylisting requests, while the master
// is SIGKILLed and, later, a failover is forced with SENTINEL FAILOVER. Checked: every request
// answered, each within the command timeouts, only with the normal answer or the one its
// fail_mode gives; policyd on the new master soon after the Sentinels announce it
// (+switch-master), without a restart; and the quota: counted exactly before and after, never a
// recipient counted twice across a failover, and no more lost in one than were accepted in the
// moments replication could not cover.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <sstream>
#include <thread>

#include "tests/fault/load.hpp"
#include "tests/fixtures/dns_server.hpp"
#include "tests/fixtures/policyd_process.hpp"
#include "tests/fixtures/redis_ha.hpp"

using namespace postwarden;
using namespace postwarden::test;
using namespace std::chrono_literals;

namespace {

constexpr int timeout_ms = 300;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr int margin_ms = 700;
#else
constexpr int margin_ms = 300;
#endif
// After the Sentinels announce the new master, policyd must answer from it within this.
constexpr long long switch_bound_ms = 2000;
const std::string unavailable = "DEFER_IF_PERMIT 4.3.0 Policy service unavailable";
const std::string greylisted = "DEFER_IF_PERMIT 4.7.1 Greylisted, please try again in ";
const std::string zone = "sender.fault.test A 192.0.2.250\n";

long long ms(steady::duration d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

bool normal(const LoadReply& r) {
    return r.outbound ? r.action == "DUNNO" : r.action.rfind(greylisted, 0) == 0;
}

bool per_fail_mode(const LoadReply& r) {
    return r.outbound ? r.action == unavailable : r.action == "DUNNO";
}

PolicyLoad::Options load_options(const std::string& prefix) {
    PolicyLoad::Options o;
    o.connections = 20;
    o.depth = 2;
    o.pause = 20ms;
    o.login_prefix = prefix;
    return o;
}

long long used(RedisHa& ha, const std::string& login) {
    auto v = ha.run({"HVALS", "pw:quota:{" + login + "}:used:3600"});
    long long sum = 0;
    for (const auto& e : v.elements)
        sum += std::stoll(e.str);
    return sum;
}

// What policyd logged about its Redis connections (not its decisions), shown when a check fails.
std::string connection_log(PolicydProcess& policyd) {
    std::istringstream in(policyd.log());
    std::string out;
    for (std::string line; std::getline(in, line);)
        if (line.find("action=") == std::string::npos) out += line + "\n";
    return out;
}

// Every reply answered, in time, and only as expected.
void check_answers(PolicyLoad& load, PolicydProcess& policyd) {
    INFO(load.replies().size() << " replies; unanswered " << load.unanswered());
    CHECK(load.unanswered() == 0);
    CHECK(load.closed_by_daemon() == 0);
    CHECK(policyd.process().running());
    std::size_t wrong = 0, late = 0;
    for (const auto& r : load.replies()) {
        if (!normal(r) && !per_fail_mode(r)) {
            UNSCOPED_INFO("unexpected reply: " << r.action);
            ++wrong;
        }
        // an EVALSHA that meets NOSCRIPT on a new master has two timeouts (README, Operating)
        if (r.service_ms() > 2 * timeout_ms + margin_ms) ++late;
    }
    CHECK(wrong == 0);
    CHECK(late == 0);
    CHECK(load.replies().size() > 200);
}

// Ends every message as Postfix would (END-OF-MESSAGE with the recipients it accepted) and
// returns, per login, the recipients accepted.
std::map<std::string, long long> end_messages(PolicydProcess& policyd, PolicyLoad& load) {
    std::map<std::string, long long> accepted;
    std::vector<std::string> ends;
    for (const auto& r : load.replies()) {
        if (!r.outbound) continue;
        bool ok = r.action == "DUNNO";
        accepted[r.login] += ok ? 1 : 0;
        Attributes a = inbound("198.51.100.7", r.login, "");
        a.erase("recipient");
        a["sasl_username"] = r.login;
        a["instance"] = r.instance;
        a["protocol_state"] = "END-OF-MESSAGE";
        a["recipient_count"] = ok ? "1" : "0";
        ends.push_back(format_request(a));
    }
    PolicyClient client(policyd.port());
    for (std::size_t at = 0; at < ends.size(); at += 100) {
        std::string batch;
        std::size_t n = std::min<std::size_t>(100, ends.size() - at);
        for (std::size_t i = 0; i < n; ++i)
            batch += ends[at + i];
        client.send_raw(batch);
        for (std::size_t i = 0; i < n; ++i)
            REQUIRE(client.read_reply() == "DUNNO");
    }
    return accepted;
}

void check_exact(RedisHa& master, const std::map<std::string, long long>& accepted) {
    long long total = 0;
    for (const auto& [login, count] : accepted) {
        INFO(login);
        CHECK(used(master, login) == count);
        total += count;
    }
    CHECK(total > 0);
}

struct Failover {
    steady::time_point event;      // the master killed, or SENTINEL FAILOVER sent
    steady::time_point announced;  // the first +switch-master
};

// What one failover did to the answers and the counts.
void check_failover(PolicyLoad& load, PolicydProcess& policyd, RedisHa& master, const Failover& f,
                    const char* what, bool lossless = false) {
    INFO(connection_log(policyd));
    INFO(master.sentinel_events());
    check_answers(load, policyd);
    // policyd back on a master: the last answer per fail_mode, and the first normal one after
    // the failover began, as seen from the announcement
    steady::time_point last_failed = f.event, first_back{};
    bool failed_any = false;
    for (const auto& r : load.replies())
        if (!normal(r) && r.answered > f.event) {
            last_failed = std::max(last_failed, r.answered);
            failed_any = true;
        }
    for (const auto& r : load.replies())
        if (normal(r) && r.sent > last_failed &&
            (first_back == steady::time_point{} || r.answered < first_back))
            first_back = r.answered;
    REQUIRE(first_back != steady::time_point{});
    // On a loaded machine a Sentinel may find the new master slow and fail it over once more
    // (seen once in twenty runs): policyd must follow that one too, and what was written
    // before it may be lost as well.
    std::vector<steady::time_point> later;
    for (auto s : master.switches())
        if (s > f.announced) later.push_back(s);
    if (!later.empty())
        WARN(what << ": the Sentinels failed over " << later.size() << " more time(s)");
    auto announced = f.announced;
    for (auto s : later)
        if (s < last_failed) announced = s;
    const auto announced_ms = ms(announced - f.event);
    const auto back_after_announce = ms(first_back - announced);
    const auto last_failed_after_announce = ms(last_failed - announced);
    if (failed_any)
        WARN(what << ": +switch-master " << announced_ms << " ms after the event; policyd "
                  << "answered normally again " << back_after_announce << " ms after it (a gap of "
                  << ms(first_back - f.event)
                  << " ms from the event); its last answer per fail_mode "
                  << last_failed_after_announce << " ms after it");
    else
        WARN(what << ": +switch-master " << announced_ms
                  << " ms after the event; no request was answered per fail_mode");
    CHECK(last_failed_after_announce < switch_bound_ms);
    CHECK(back_after_announce < switch_bound_ms);

    // The counts: never more than accepted (nothing counted twice); less only by what was
    // accepted while the last writes could still be lost (a second before the event, until the
    // announcement; two seconds before a later announcement): asynchronous replication.
    auto accepted = end_messages(policyd, load);
    auto risky = [&](steady::time_point t) {
        if (t > f.event - 1s && t < f.announced) return true;
        return std::any_of(later.begin(), later.end(), [&](auto s) { return t > s - 2s && t < s; });
    };
    long long at_risk = 0, lost = 0, over = 0;
    for (const auto& r : load.replies())
        if (r.outbound && r.action == "DUNNO" && risky(r.answered)) ++at_risk;
    for (const auto& [login, count] : accepted) {
        auto u = used(master, login);
        over += std::max(0LL, u - count);
        lost += std::max(0LL, count - u);
    }
    WARN(what << ": " << lost << " counted recipients lost in the failover, of " << at_risk
              << " accepted while replication could lose them");
    CHECK(over == 0);
    CHECK(lost <= at_risk);
    if (lossless) CHECK(lost == 0);
}

}  // namespace

TEST_CASE(
    "sentinel: policyd follows a killed master and a forced failover under load, counting each "
    "recipient at most once",
    "[ha][policyd]") {
    RedisHa ha;
    DnsServer dns(zone);
    PolicydProcess policyd("[redis]\n" + ha.redis_config() +
                           "timeout_ms = " + std::to_string(timeout_ms) +
                           "\n[dns]\nnameservers = " + dns.nameserver() +
                           "\ntimeout_ms = 500\n[quota]\nlimits = 100000/3600\nauto_block = 0\n");

    // Before: exact, and on every replica.
    std::map<std::string, long long> before;
    {
        PolicyLoad load(policyd.port(), load_options("before"));
        std::this_thread::sleep_for(1500ms);
        load.stop();
        check_answers(load, policyd);
        CHECK(std::all_of(load.replies().begin(), load.replies().end(), normal));
        before = end_messages(policyd, load);
        check_exact(ha, before);
        ha.sync_replicas();
    }

    {
        {
            ha.wait_for_replicas(2, false);
            PolicyLoad load(policyd.port(), load_options("killed"));
            std::this_thread::sleep_for(1000ms);
            Failover f;
            f.event = steady::now();
            auto old = ha.kill_master();
            f.announced = ha.wait_for_switch(old, 20s);
            std::this_thread::sleep_for(2500ms);
            load.stop();
            check_failover(load, policyd, ha, f, "master killed");
        }
        {
            ha.wait_for_replicas(1, false);
            PolicyLoad load(policyd.port(), load_options("forced"));
            std::this_thread::sleep_for(1000ms);
            Failover f;
            auto old = ha.master().port();
            f.event = steady::now();
            ha.failover();
            f.announced = ha.wait_for_switch(old, 20s);
            std::this_thread::sleep_for(2500ms);
            load.stop();
            check_failover(load, policyd, ha, f, "SENTINEL FAILOVER");
            ha.demote(old);
        }
        {
            // docs/ha.md's planned switchover: writes paused on the master first, and the
            // replica caught up, so that no write is acknowledged by the old master that the
            // new one lacks; they time out instead (answered per fail_mode), nothing is lost.
            ha.wait_for_replicas(1, false);
            PolicyLoad load(policyd.port(), load_options("paused"));
            std::this_thread::sleep_for(1000ms);
            Failover f;
            auto old = ha.master().port();
            f.event = steady::now();
            ha.run({"CLIENT", "PAUSE", "5000", "WRITE"});
            ha.wait_for_replicas(1, true);
            ha.failover();
            f.announced = ha.wait_for_switch(old, 20s);
            std::this_thread::sleep_for(2500ms);
            load.stop();
            check_failover(load, policyd, ha, f, "paused, then SENTINEL FAILOVER", true);
            ha.demote(old);
        }
        // After: exact again, and what was replicated before the failovers is still there.
        PolicyLoad load(policyd.port(), load_options("after"));
        std::this_thread::sleep_for(1000ms);
        load.stop();
        check_answers(load, policyd);
        CHECK(std::all_of(load.replies().begin(), load.replies().end(), normal));
        check_exact(ha, end_messages(policyd, load));
        check_exact(ha, before);
        CHECK(policyd.log().find("Sentinel names a new master") != std::string::npos);
    }
}
