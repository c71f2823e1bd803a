// greylist_test.cpp — greylisting as policyd and the milter finish it together (SPEC §4, §5: S1,
// S2), with both real daemons on one redis-server, each with a DNS server of its own so that
// their SPF lookups can answer differently, and a Postfix played by the test: policyd at RCPT for
// every recipient, then the milter for the message. Whatever each daemon's SPF lookup answers,
// an inbound message ends greylist-passed, trusted (SPF pass and aligned DKIM, both seen by the
// milter), or deferred; and auto-allow is earned only by accepted mail of several sender domains
// from a client network, never by an SPF domain.
#include <catch2/catch.hpp>

#include <thread>

#include "tests/fixtures/policyd_process.hpp"
#include "tests/milter/support.hpp"

using namespace postwarden::test;
using namespace std::chrono_literals;

namespace {

const std::string pass = "\"v=spf1 ip4:192.0.2.0/24 -all\"";
const std::string fail = "\"v=spf1 -all\"";

// <p><m>.test: SPF as policyd's (p) and the milter's (m) lookups see it, pass or not; each
// with a DKIM key. plusall.test authorizes every address; none1.test and none2.test publish
// no SPF record.
std::string zone_for(bool policyd) {
    std::string z;
    for (std::string name : {"pp", "pn", "np", "nn"}) {
        bool passes = (policyd ? name[0] : name[1]) == 'p';
        z += name + ".test TXT " + (passes ? pass : fail) + "\n";
        z += "ed._domainkey." + name +
             ".test TXT \"v=DKIM1; k=ed25519; p=" + keys().ed25519_public + "\"\n";
    }
    z += "plusall.test TXT \"v=spf1 +all\"\n";
    return z;
}

std::string common_config(RedisServer& redis, DnsServer& dns, const std::string& greylist) {
    return "[redis]\naddress = " + redis.endpoint().to_string() +
           "\n[dns]\nnameservers = " + dns.nameserver() + "\ntimeout_ms = 400\n[greylist]\n" +
           greylist;
}

enum class End { deferred, greylist_passed, trusted };

const char* name_of(End e) {
    return e == End::deferred ? "deferred" : e == End::trusted ? "trusted" : "greylist-passed";
}

struct World {
    RedisServer redis;
    DnsServer policyd_dns{zone_for(true)}, milter_dns{zone_for(false)};
    PolicydProcess policyd;
    MilterProcess milter;
    explicit World(const std::string& greylist)
        : policyd(common_config(redis, policyd_dns, greylist)),
          milter("authserv_id = mx.rcpt.example\n" + common_config(redis, milter_dns, greylist)) {}

    // One delivery attempt as Postfix makes it. Accepted mail is trusted when the milter says
    // so, else it passed greylisting (the test checks it was deferred before).
    End attempt(const Transaction& t) {
        PolicyClient policy(policyd.port());
        bool deferred = false;  // a deferred recipient is retried with the others, for brevity
        for (const auto& rcpt : t.recipients) {
            auto a = inbound(t.client_ip, t.sender, rcpt);
            a["helo_name"] = t.helo;
            auto reply = policy.ask(a);
            INFO(reply);
            REQUIRE((reply == "DUNNO" || reply.rfind("PREPEND", 0) == 0 ||
                     reply.rfind("DEFER_IF_PERMIT 4.7.1 Greylisted", 0) == 0));
            deferred = deferred || reply.rfind("DEFER_IF_PERMIT", 0) == 0;
        }
        if (deferred) return End::deferred;
        auto before = milter.log().size();
        auto out = MilterClient(milter).run(t);
        INFO(out.text);
        if (out.text == "451 4.7.1 Greylisted, please try again later") return End::deferred;
        REQUIRE(out.accepted());
        auto line = milter.log().substr(before);
        return line.find("reason=trusted") != std::string::npos ? End::trusted
                                                                : End::greylist_passed;
    }

    long calls(const std::string& command) {
        auto field = redis.info_field("commandstats", "cmdstat_" + command);
        return field.empty() ? 0 : std::stol(field.substr(6, field.find(',') - 6));
    }
};

Transaction message(const std::string& sender, bool signed_by_sender_domain = false) {
    Transaction t;
    t.sender = sender;
    t.headers = headers_from(sender);
    if (signed_by_sender_domain) {
        auto domain = sender.substr(sender.find('@') + 1);
        t.headers.insert(t.headers.begin(),
                         {"DKIM-Signature", sign(t.headers, t.body, "ed25519", "ed", domain)});
    }
    return t;
}

}  // namespace

TEST_CASE("greylisting: policyd and the milter disagreeing on SPF never skip it",
          "[milter][greylist]") {
    World w("delay = 1\nretry_window = 60\nauto_allow_clients = 0\n");
    // Unsigned mail: deferred first, whichever daemon's SPF passes, then passes after the delay.
    for (std::string d : {"pp", "pn", "np", "nn"}) {
        INFO(d);
        auto t = message("x@" + d + ".test");
        CHECK(name_of(w.attempt(t)) == std::string("deferred"));
    }
    std::this_thread::sleep_for(1100ms);
    for (std::string d : {"pp", "pn", "np", "nn"}) {
        INFO(d);
        auto t = message("x@" + d + ".test");
        // np: policyd passed the network triplet at RCPT; the milter, whose SPF passes, must
        // not defer it again with the SPF-domain triplet.
        CHECK(name_of(w.attempt(t)) == std::string("greylist-passed"));
        CHECK(name_of(w.attempt(t)) == std::string("greylist-passed"));
    }
    // Signed by the sender's domain: trusted only when the milter's own SPF check passes.
    CHECK(name_of(w.attempt(message("y@pp.test", true))) == std::string("trusted"));
    CHECK(name_of(w.attempt(message("y@pn.test", true))) == std::string("deferred"));
    CHECK(name_of(w.attempt(message("y@np.test", true))) == std::string("deferred"));
    CHECK(name_of(w.attempt(message("y@nn.test", true))) == std::string("deferred"));
    std::this_thread::sleep_for(1100ms);
    CHECK(name_of(w.attempt(message("y@pn.test", true))) == std::string("greylist-passed"));
    CHECK(name_of(w.attempt(message("y@np.test", true))) == std::string("trusted"));
    CHECK(name_of(w.attempt(message("y@nn.test", true))) == std::string("greylist-passed"));

    // The usual case, neither SPF passing and the triplet passed at policyd: the milter reads
    // it (one MGET) and runs no script.
    auto evals = w.calls("evalsha");
    auto mgets = w.calls("mget");
    CHECK(name_of(w.attempt(message("x@nn.test"))) == std::string("greylist-passed"));
    CHECK(w.calls("evalsha") == evals);
    CHECK(w.calls("mget") == mgets + 1);
}

TEST_CASE("greylisting: auto-allow is earned by accepted mail of distinct sender domains",
          "[milter][greylist][cluster]") {
    World w("delay = 1\nretry_window = 60\nauto_allow_clients = 2\n");
    const std::string client = "pw:awl-domains:{192.0.2.0/24}";
    auto pass_once = [&](const Transaction& t) {
        REQUIRE(name_of(w.attempt(t)) == std::string("deferred"));
        std::this_thread::sleep_for(1100ms);
        REQUIRE(name_of(w.attempt(t)) == std::string("greylist-passed"));
    };
    // Two senders of one domain, three triplets: one domain counted, the network not allowed.
    auto a = message("a@none1.test");
    a.recipients = {"bob@rcpt.example", "carol@rcpt.example"};
    pass_once(a);
    pass_once(message("b@none1.test"));
    CHECK(w.redis.run({"SMEMBERS", client}).elements.size() == 1);
    // Mail whose sender's domain says SPF fail for this client counts for nothing.
    pass_once(message("x@nn.test"));
    CHECK(w.redis.run({"SCARD", client}).integer == 1);
    auto fresh = message("c@none1.test");
    fresh.recipients = {"dave@rcpt.example"};
    CHECK(name_of(w.attempt(fresh)) == std::string("deferred"));
    // A second domain, from another address of the /24: greylisted by network at policyd (its
    // SPF lookup fails), accepted by the milter (its lookup passes), and counted.
    auto other = message("e@np.test");
    other.client_ip = "192.0.2.77";
    pass_once(other);
    CHECK(w.redis.run({"SCARD", client}).integer == 2);
    CHECK(w.redis.run({"TTL", client}).integer > 35 * 86400 - 60);
    // Now the network is allowed: a new triplet passes at once, at policyd and at the milter.
    auto newcomer = message("z@none2.test");
    newcomer.recipients = {"erin@rcpt.example"};
    CHECK(name_of(w.attempt(newcomer)) == std::string("greylist-passed"));
    CHECK(w.policyd.log().find("reason=greylist-client") != std::string::npos);
    CHECK(w.redis.run({"SCARD", client}).integer == 2);  // never more than it takes
}

TEST_CASE("greylisting: an SPF domain that authorizes every address never earns auto-allow",
          "[milter][greylist]") {
    World w("delay = 1\nretry_window = 60\nauto_allow_clients = 2\n");
    // plusall.test passes SPF from anywhere: policyd hands it over, the milter greylists it by
    // the SPF-domain triplet. Three senders pass and are accepted from three networks.
    std::vector<Transaction> mails;
    for (std::string ip : {"192.0.2.10", "198.51.100.10", "203.0.113.10"}) {
        auto t = message("u" + ip + "@plusall.test");
        t.client_ip = ip;
        mails.push_back(t);
        CHECK(name_of(w.attempt(t)) == std::string("deferred"));
    }
    std::this_thread::sleep_for(1100ms);
    for (const auto& t : mails)
        CHECK(name_of(w.attempt(t)) == std::string("greylist-passed"));
    CHECK(w.redis.run({"EXISTS", "pw:awl-domains:{plusall.test}"}).integer == 0);
    auto fresh = message("new@plusall.test");
    fresh.client_ip = "192.0.2.99";
    CHECK(name_of(w.attempt(fresh)) == std::string("deferred"));
}

TEST_CASE("greylisting: without trust_authenticated, accepted mail still earns auto-allow",
          "[milter][greylist]") {
    // policyd greylists everything at RCPT; the milter only counts what it accepted. Every
    // spelling of one internationalized domain is one domain.
    World w("delay = 1\nretry_window = 60\nauto_allow_clients = 2\ntrust_authenticated = no\n");
    const std::string client = "pw:awl-domains:{192.0.2.0/24}";
    auto pass_once = [&](const Transaction& t) {
        REQUIRE(name_of(w.attempt(t)) == std::string("deferred"));
        std::this_thread::sleep_for(1100ms);
        REQUIRE(name_of(w.attempt(t)) == std::string("greylist-passed"));
    };
    pass_once(
        message("a@b\xc3\xbc"
                "cher.example"));
    pass_once(message("b@xn--bcher-kva.example"));
    CHECK(w.redis.run({"SCARD", client}).integer == 1);
    pass_once(message("c@none2.test"));
    CHECK(w.redis.run({"SCARD", client}).integer == 2);
    auto newcomer = message("z@none1.test");
    newcomer.recipients = {"erin@rcpt.example"};
    CHECK(name_of(w.attempt(newcomer)) == std::string("greylist-passed"));
    CHECK(w.policyd.log().find("reason=greylist-client") != std::string::npos);
}
