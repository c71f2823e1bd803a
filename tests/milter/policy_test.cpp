// policy_test.cpp — postwarden-milter's Redis-backed decisions against a real redis-server:
// S8 (From and MAIL FROM of authenticated users, alias:<login>) and the end of S2 (trusted
// greylisting with the shared greylist.lua), plus hostile messages that must never crash it.
#include <catch2/catch.hpp>

#include <thread>

#include "tests/milter/support.hpp"

using namespace postwarden::test;
using namespace std::chrono_literals;

namespace {

using World = MilterWorld;

Transaction submission(const std::string& login, const std::string& sender,
                       const std::string& from) {
    Transaction t;
    t.client_ip = "198.51.100.44";  // not a trusted network: outbound because authenticated
    t.login = login;
    t.sender = sender;
    t.headers = headers_from(from);
    return t;
}

const std::string mismatch = "550 5.7.1 Sender address does not match your login";

}  // namespace

TEST_CASE("S8: MAIL FROM and header From must be the login or in alias:<login>", "[milter]") {
    World w("");
    w.redis.run({"SADD", "pw:alias:alice@rcpt.example", "shared@rcpt.example", "@alias.example"});

    auto out =
        w.run(submission("Alice@rcpt.example", "alice@rcpt.example", "Alice <alice@rcpt.example>"));
    CHECK(out.accepted());
    CHECK(out.added("Authentication-Results").empty());  // outbound mail is not verified

    out = w.run(submission("alice@rcpt.example", "bob@rcpt.example", "alice@rcpt.example"));
    CHECK(out.stage == 'M');
    CHECK(out.text == mismatch);

    out = w.run(submission("alice@rcpt.example", "Shared@rcpt.example", "Team <x@ALIAS.example>"));
    CHECK(out.accepted());

    out = w.run(submission("alice@rcpt.example", "alice@rcpt.example", "Boss <boss@rcpt.example>"));
    CHECK(out.stage == 'N');
    CHECK(out.text == mismatch);

    // every address of the From counts
    out = w.run(submission("alice@rcpt.example", "alice@rcpt.example",
                           "alice@rcpt.example, boss@rcpt.example"));
    CHECK(out.text == mismatch);
    CHECK(w.milter.log().find("reason=from-login-mismatch login=alice@rcpt.example") !=
          std::string::npos);

    // a login that is not an address sends only as its aliases
    w.redis.run({"SADD", "pw:alias:carol", "carol@rcpt.example"});
    CHECK(w.run(submission("carol", "carol@rcpt.example", "carol@rcpt.example")).accepted());
    CHECK(w.run(submission("carol", "carol@other.example", "carol@rcpt.example")).text == mismatch);

    // the null sender carries no address to check
    CHECK(w.run(submission("carol", "", "carol@rcpt.example")).accepted());
}

TEST_CASE("S8: Redis down is a temporary failure, never a reject", "[milter]") {
    World w("[redis]\ntimeout_ms = 100\n");
    w.redis.stop();
    auto out = w.run(submission("alice@rcpt.example", "shared@rcpt.example", "alice@rcpt.example"));
    CHECK(out.stage == 'M');
    CHECK(out.text.rfind("451 4.3.0", 0) == 0);
    // the login itself needs no lookup
    CHECK(w.run(submission("alice@rcpt.example", "alice@rcpt.example", "alice@rcpt.example"))
              .accepted());
}

TEST_CASE("S2: SPF pass with aligned DKIM is trusted, SPF-only mail is greylisted", "[milter]") {
    World w("[greylist]\ndelay = 1\n");
    Transaction t;
    t.sender = "news@sender.test";
    t.headers = headers_from("news@sender.test");
    t.headers.insert(t.headers.begin(),
                     {"DKIM-Signature", sign(t.headers, t.body, "ed25519", "ed", "sender.test")});
    auto out = w.run(t);
    INFO(w.milter.log());
    CHECK(out.accepted());
    CHECK(w.milter.log().find("action=accept reason=trusted") != std::string::npos);
    CHECK(w.redis.run({"KEYS", "pw:grey:*"}).elements.empty());

    // SPF passes for other.test, no signature: the same triplet policyd would use
    Transaction spf_only;
    spf_only.sender = "x@other.test";
    spf_only.headers = headers_from("x@other.test");
    out = w.run(spf_only);
    CHECK(out.stage == 'E');
    CHECK(out.text == "451 4.7.1 Greylisted, please try again later");
    CHECK(w.redis.run({"EXISTS", "pw:grey:{other.test}:x@other.test:bob@rcpt.example"}).integer ==
          1);
    std::this_thread::sleep_for(1100ms);
    out = w.run(spf_only);
    CHECK(out.accepted());
    CHECK(out.added("Authentication-Results").find("spf=pass") != std::string::npos);

    // a triplet that passed at policyd before is known here too
    w.redis.run({"SET", "pw:grey:{other.test}:y@other.test:bob@rcpt.example", "p", "EX", "600"});
    spf_only.sender = "y@other.test";
    CHECK(w.run(spf_only).accepted());
}

// policyd answers allow-listed mail at RCPT without handing it to the milter, so the milter
// must not greylist it at end of message either (SPEC §3: allow entries skip greylisting).
TEST_CASE("S2: allow-listed senders are not greylisted at end of message", "[milter]") {
    World w("[greylist]\ndelay = 60\n");
    Transaction t;
    t.sender = "x@other.test";  // SPF passes, no signature: greylisted unless allowed
    t.headers = headers_from("x@other.test");
    CHECK(w.run(t).text == "451 4.7.1 Greylisted, please try again later");
    w.redis.run({"SADD", "pw:allow:domain", "other.test"});
    CHECK(w.run(t).accepted());
    w.redis.run({"DEL", "pw:allow:domain"});
    w.redis.run({"SADD", "pw:allow:sender:rcpt.example", "x@other.test"});
    CHECK(w.run(t).accepted());
    w.redis.run({"DEL", "pw:allow:sender:rcpt.example"});
    w.redis.run({"SADD", "pw:allow:net", "192.0.2.0/24"});
    CHECK(w.run(t).accepted());
    w.redis.run({"DEL", "pw:allow:net"});
    CHECK(w.run(t).text == "451 4.7.1 Greylisted, please try again later");
}

TEST_CASE("S2: Redis down follows the greylist fail_mode", "[milter]") {
    World open("[greylist]\ndelay = 60\n[redis]\ntimeout_ms = 100\n");
    open.redis.stop();
    Transaction t;
    t.sender = "x@other.test";
    t.headers = headers_from("x@other.test");
    CHECK(open.run(t).accepted());
    World closed("[greylist]\ndelay = 60\nfail_mode = closed\n[redis]\ntimeout_ms = 100\n");
    closed.redis.stop();
    CHECK(closed.run(t).text.rfind("451 4.3.0", 0) == 0);
}

TEST_CASE("hostile messages: answered, never a crash or a hang", "[milter][hostile]") {
    World w("[greylist]\nenabled = no\n");
    Transaction t;
    t.sender = "news@sender.test";
    t.headers = headers_from("news@sender.test");
    for (int i = 0; i < 3000; ++i)
        t.headers.push_back({"X-Filler-" + std::to_string(i), "some text"});
    t.headers.push_back({"X-Huge", std::string(200000, 'a')});
    t.headers.push_back({"DKIM-Signature", "v=1; a=rsa-sha256; d=; s=;;;=;b="});
    auto out = w.run(t);
    CHECK(out.stage == 'E');
    CHECK(out.reply != 0);

    Transaction junk;
    junk.sender = "news@sender.test";
    junk.headers = headers_from("\xff\xfe \"\\\" <news@sender.test>");
    junk.headers.push_back({"DKIM-Signature", "\xff\xfe\x01 junk; ; = ;b"});
    junk.headers.push_back({"DKIM-Signature",
                            "v=1; a=rsa-sha256; d=sender.test; s=broken; "
                            "h=from; bh=AAAA; b=AAAA"});
    junk.headers.push_back({"DKIM-Signature",
                            "v=1; a=ed25519-sha256; d=sender.test; s=ed; "
                            "l=99999999999999999999; h=from; bh=; b=="});
    junk.headers.push_back({"Authentication-Results", "(((((unbalanced mx.rcpt.example"});
    junk.body = std::string("\x00\xff\r\n.\r\n", 7) + std::string(300000, '\x80') + "\r\n";
    out = w.run(junk);
    CHECK(out.stage == 'E');
    CHECK(out.reply != 0);
    for (int i = 0; i < 20; ++i)
        junk.headers.push_back({"DKIM-Signature",
                                "v=1; a=rsa-sha256; d=sender.test; s=slow; "
                                "h=from; bh=AAAA; b=AAAA"});
    out = w.run(junk);  // only the first signatures are looked up: bounded time
    CHECK(out.stage == 'E');
    CHECK(w.milter.process().running());
}

// libmilter runs one thread per MTA connection, all sharing the Services (SPF, DKIM, the PSL,
// Redis). Many connections at once must each get the answer they would get alone; under
// ThreadSanitizer (contrib/test.sh) this is the test that drives those shared paths together.
TEST_CASE("concurrent sessions: each message is decided as if it were alone", "[milter][threads]") {
    World w("[greylist]\ndelay = 60\n");
    w.redis.run({"SADD", "pw:alias:alice@rcpt.example", "@alias.example"});
    Transaction trusted;
    trusted.sender = "news@sender.test";
    trusted.headers = headers_from("news@sender.test");
    trusted.headers.insert(
        trusted.headers.begin(),
        {"DKIM-Signature", sign(trusted.headers, trusted.body, "ed25519", "ed", "sender.test")});
    Transaction spoofed = trusted;  // SPF fails from this client, the signature is broken
    spoofed.client_ip = "203.0.113.9";
    spoofed.body = "Changed.\r\n";

    constexpr int threads = 8, rounds = 4;
    std::vector<std::vector<std::string>> failures(threads);
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i) {
        pool.emplace_back([&, i] {
            auto expect = [&](bool ok, const std::string& what) {
                if (!ok) failures[i].push_back(what);
            };
            for (int r = 0; r < rounds; ++r) {
                expect(w.run(trusted).accepted(), "trusted");
                auto out = w.run(spoofed);
                expect(out.text == "550 5.7.1 Rejected by DMARC policy for sender.test",
                       "spoofed: " + out.text);
                Transaction grey;
                grey.sender = "t" + std::to_string(i) + "r" + std::to_string(r) + "@other.test";
                grey.headers = headers_from(grey.sender);
                out = w.run(grey);
                expect(out.text == "451 4.7.1 Greylisted, please try again later",
                       "greylisted: " + out.text);
                expect(w.run(submission("alice@rcpt.example", "alice@rcpt.example",
                                        "Alice <a@alias.example>"))
                           .accepted(),
                       "alias");
                expect(w.run(submission("alice@rcpt.example", "alice@rcpt.example",
                                        "boss@rcpt.example"))
                               .text == mismatch,
                       "mismatch");
            }
        });
    }
    for (auto& t : pool)
        t.join();
    INFO(w.milter.log());
    for (const auto& f : failures)
        CHECK(f == std::vector<std::string>{});
    CHECK(w.redis.run({"KEYS", "pw:grey:*"}).elements.size() == threads * rounds);
}
