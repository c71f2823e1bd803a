// dns_test.cpp — DNS timeouts and SERVFAIL at every kind of lookup the daemons make: the SPF
// record (TXT) and what its mechanisms look up (include's TXT, a's A and AAAA, mx's MX and the
// exchanges' A, exists' A, ptr's PTR), the DKIM key (TXT), the DMARC record (TXT) at the From
// domain and at its organizational domain. Each must give temperror, and nothing may become a
// permanent reject: policyd greylists by network, the milter answers 451 (4.7.5 when the DMARC
// record could not be fetched and nothing aligns).
#include <catch2/catch.hpp>

#include <future>
#include <memory>

#include "tests/fixtures/policyd_process.hpp"
#include "tests/milter/support.hpp"

using namespace postwarden::test;
using namespace std::chrono_literals;

namespace {

const std::vector<std::string> behaviours = {"TIMEOUT", "SERVFAIL"};

// The client of every SPF case; its reverse name fails too, for the ptr mechanism.
std::string client_for(const std::string& behaviour) {
    return behaviour == "TIMEOUT" ? "192.0.2.77" : "192.0.2.78";
}

struct SpfCase {
    std::string kind, domain, client;
};

// Zone lines that make one lookup of domain's SPF evaluation fail with `b`, TIMEOUT or
// SERVFAIL. A name's records come before its behaviour, so they are still answered (see
// dnsserver.py): only the other types fail.
std::string spf_zone(std::vector<SpfCase>* cases) {
    std::string z;
    for (const auto& b : behaviours) {
        std::string m = b == "TIMEOUT" ? "t" : "s";
        auto add = [&](const std::string& kind, const std::string& lines,
                       const std::string& client = "") {
            std::string domain = kind + "-" + m + ".test";
            std::string text = lines;
            for (auto at = text.find("@"); at != std::string::npos; at = text.find("@"))
                text.replace(at, 1, domain);
            z += text + "_dmarc." + domain + " TXT \"v=DMARC1; p=reject\"\n";
            cases->push_back({kind, domain, client.empty() ? client_for(b) : client});
        };
        add("txt", "@ " + b + "\n");
        add("include", "@ TXT \"v=spf1 include:txt-" + m + ".test -all\"\n");
        add("a", "@ TXT \"v=spf1 a -all\"\n@ " + b + "\n");
        add("aaaa", "@ TXT \"v=spf1 a -all\"\n@ " + b + "\n",
            b == "TIMEOUT" ? "2001:db8::77" : "2001:db8::78");
        add("mx", "@ TXT \"v=spf1 mx -all\"\n@ " + b + "\n");
        add("mxa", "@ TXT \"v=spf1 mx -all\"\n@ MX 10 host.@\nhost.@ " + b + "\n");
        add("exists", "@ TXT \"v=spf1 exists:probe.@ -all\"\nprobe.@ " + b + "\n");
        // RFC 7208 §5.5 lets a failed PTR lookup merely not match, which with -all would make
        // a DNS outage an SPF fail; libspf2 reports it as temperror, and that is pinned here.
        add("ptr", "@ TXT \"v=spf1 ptr -all\"\n");
        auto last = client_for(b).substr(client_for(b).rfind('.') + 1);
        z += last + ".2.0.192.in-addr.arpa " + b + "\n";
    }
    return z;
}

// DKIM keys and DMARC records that fail: selectors slow (support.cpp: TIMEOUT) and servfail;
// the DMARC record at the From domain, and at the organizational domain of sub.<domain>.
std::string dkim_dmarc_zone() {
    std::string z = "servfail._domainkey.sender.test SERVFAIL\n";
    for (const auto& b : behaviours) {
        std::string m = b == "TIMEOUT" ? "t" : "s";
        z += "dmarc-" + m + ".test TXT \"v=spf1 -all\"\n_dmarc.dmarc-" + m + ".test " + b + "\n";
        z += "sub.org-" + m + ".test TXT \"v=spf1 -all\"\norg-" + m + ".test TXT \"v=spf1 -all\"\n";
        z += "_dmarc.org-" + m + ".test " + b + "\n";
    }
    return z;
}

template <typename T, typename F>
std::vector<T> in_parallel(std::size_t n, F f) {
    std::vector<std::future<T>> futures;
    for (std::size_t i = 0; i < n; ++i)
        futures.push_back(std::async(std::launch::async, f, i));
    std::vector<T> out;
    for (auto& fu : futures)
        out.push_back(fu.get());
    return out;
}

}  // namespace

TEST_CASE("policyd: DNS failing at any SPF lookup greylists by network, never rejects",
          "[fault][dns]") {
    std::vector<SpfCase> cases;
    DnsServer dns(spf_zone(&cases));
    RedisServer redis;
    PolicydProcess policyd("[redis]\naddress = " + redis.endpoint().to_string() +
                           "\n[dns]\nnameservers = " + dns.nameserver() +
                           "\ntimeout_ms = 300\n[greylist]\ndelay = 60\n");
    auto replies = in_parallel<std::string>(cases.size(), [&](std::size_t i) {
        PolicyClient client(policyd.port());
        return client.ask(inbound(cases[i].client, "x@" + cases[i].domain, "bob@example.net"));
    });
    auto log = policyd.log();
    for (std::size_t i = 0; i < cases.size(); ++i) {
        const auto& c = cases[i];
        INFO(c.kind << " " << c.domain << " from " << c.client << ": " << replies[i]);
        CHECK(replies[i].rfind("DEFER_IF_PERMIT 4.7.1 Greylisted", 0) == 0);
        auto at = log.find("sender=<x@" + c.domain + ">");
        REQUIRE(at != std::string::npos);
        auto line = log.substr(at, log.find('\n', at) - at);
        INFO(line);
        CHECK(line.find("spf=temperror") != std::string::npos);
    }
}

TEST_CASE("milter: DNS failing at any lookup gives temperror and 451 or accept, never 5xx",
          "[fault][dns][milter]") {
    std::vector<SpfCase> cases;
    RedisServer redis;
    DnsServer dns(zone() + spf_zone(&cases) + dkim_dmarc_zone());
    MilterProcess milter(config(redis, dns, "[greylist]\nenabled = no\n"));
    struct Case {
        std::string what;
        Transaction t;
        bool accept;             // else 451 4.7.1 (4.7.5: no DMARC record) at end of message
        std::string in_results;  // expected in Authentication-Results or the log line
    };
    std::vector<Case> all;
    for (const auto& c : cases) {
        Transaction t;
        t.client_ip = c.client;
        t.sender = "x@" + c.domain;
        t.headers = headers_from("x@" + c.domain);
        // p=reject and nothing else passes: only the temporary SPF error stands between the
        // message and a reject, so it must be 451
        all.push_back({"spf " + c.kind + " " + c.domain, t, false, "spf=temperror"});
    }
    for (const auto& selector : {"slow", "servfail"}) {
        Transaction t;
        t.client_ip = "203.0.113.9";  // SPF fails for sender.test
        t.sender = "news@sender.test";
        t.headers = headers_from("news@sender.test");
        t.headers.insert(t.headers.begin(), {"DKIM-Signature", sign(t.headers, t.body, "rsa",
                                                                    selector, "sender.test")});
        all.push_back({std::string("dkim key ") + selector, t, false, "dkim=temperror"});
    }
    for (const auto& m : {"t", "s"}) {
        for (const auto& from :
             {std::string("x@dmarc-") + m + ".test", std::string("x@sub.org-") + m + ".test"}) {
            Transaction t;
            t.client_ip = "203.0.113.9";
            t.sender = from;
            t.headers = headers_from(from);
            // nothing aligns, so the policy the record would give may be p=reject (SPEC §10)
            all.push_back({"dmarc " + from, t, false, "dmarc=temperror"});
        }
    }
    auto outcomes = in_parallel<Outcome>(
        all.size(), [&](std::size_t i) { return MilterClient(milter.port()).run(all[i].t); });
    auto log = milter.log();
    for (std::size_t i = 0; i < all.size(); ++i) {
        const auto& c = all[i];
        const auto& out = outcomes[i];
        INFO(c.what << ": stage " << out.stage << " reply " << out.reply << " '" << out.text << "' "
                    << out.added("Authentication-Results"));
        CHECK(out.stage == 'E');
        CHECK(out.reply != 'r');
        CHECK(out.text.rfind("5", 0) == std::string::npos);
        if (c.accept) {
            CHECK(out.accepted());
            CHECK(out.added("Authentication-Results").find(c.in_results) != std::string::npos);
        } else {
            CHECK((out.text.rfind("451 4.7.1 DMARC policy for", 0) == 0 ||
                   out.text.rfind("451 4.7.5 DMARC policy for", 0) == 0));
            auto at = log.find("sender=<" + c.t.sender + ">");
            REQUIRE(at != std::string::npos);
            CHECK(log.substr(at, log.find('\n', at) - at).find(c.in_results) != std::string::npos);
        }
    }
    CHECK(milter.process().running());
}
