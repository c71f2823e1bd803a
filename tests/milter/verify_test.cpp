// verify_test.cpp — postwarden-milter against a real DNS server and redis-server on loopback,
// with messages signed by python3-dkim: SPF, DKIM (rsa-sha256, ed25519-sha256, canonicalizations,
// l=), DMARC (p=reject/quarantine/none, org-domain fallback, temperror), Authentication-Results
// and the removal of forged ones (SPEC §5, S9).
#include <catch2/catch.hpp>

#include "tests/milter/support.hpp"

using namespace postwarden::test;

namespace {

const std::string no_greylist = "[greylist]\nenabled = no\n";

struct World : MilterWorld {
    explicit World(const std::string& extra = no_greylist) : MilterWorld(extra) {}
};

Transaction signed_mail(const std::string& kind, const std::string& selector,
                        const std::string& canon = "relaxed/simple") {
    Transaction t;
    t.sender = "news@sender.test";
    t.headers = headers_from("News <news@sender.test>");
    t.body = "Hello,\r\n\r\nthis is  a test.\r\n";
    t.headers.insert(t.headers.begin(), {"DKIM-Signature", sign(t.headers, t.body, kind, selector,
                                                                "sender.test", canon)});
    return t;
}

}  // namespace

TEST_CASE("SPF and rsa-sha256 DKIM pass: DMARC passes, one Authentication-Results", "[milter]") {
    World w;
    for (auto canon : {"relaxed/simple", "simple/simple", "relaxed/relaxed", "simple/relaxed"}) {
        auto out = w.run(signed_mail("rsa", "rsa", canon));
        INFO(canon << "\n" << w.milter.log());
        CHECK(out.stage == 'E');
        CHECK(out.accepted());
        auto ar = out.added("Authentication-Results");
        CHECK(ar.find("mx.rcpt.example;") != std::string::npos);
        CHECK(ar.find("spf=pass smtp.mailfrom=sender.test") != std::string::npos);
        CHECK(ar.find("dkim=pass header.d=sender.test header.s=rsa header.a=rsa-sha256") !=
              std::string::npos);
        CHECK(ar.find("dmarc=pass (p=reject) header.from=sender.test") != std::string::npos);
    }
    CHECK(w.milter.log().find("4BXq1k2Yz: action=accept reason=verified") != std::string::npos);
}

TEST_CASE("ed25519-sha256 signatures verify, several signatures are each reported", "[milter]") {
    World w;
    auto t = signed_mail("ed25519", "ed");
    auto second = sign(t.headers, t.body, "rsa", "rsa", "sender.test");
    t.headers.insert(t.headers.begin(), {"DKIM-Signature", second});
    t.client_ip = "203.0.113.9";  // SPF fails: only DKIM can make DMARC pass
    auto out = w.run(t);
    INFO(w.milter.log());
    CHECK(out.accepted());
    auto ar = out.added("Authentication-Results");
    CHECK(ar.find("spf=fail") != std::string::npos);
    CHECK(ar.find("dkim=pass header.d=sender.test header.s=ed header.a=ed25519-sha256") !=
          std::string::npos);
    CHECK(ar.find("header.s=rsa header.a=rsa-sha256") != std::string::npos);
    CHECK(ar.find("dmarc=pass") != std::string::npos);
}

TEST_CASE("p=reject: failing SPF and a broken signature are rejected with the SPEC reply",
          "[milter]") {
    World w;
    auto t = signed_mail("rsa", "rsa");
    t.body += "appended by a forger\r\n";  // body hash mismatch
    t.client_ip = "203.0.113.9";
    auto out = w.run(t);
    INFO(w.milter.log());
    CHECK(out.reply == 'y');
    CHECK(out.text == "550 5.7.1 Rejected by DMARC policy for sender.test");
    CHECK(w.milter.log().find("action=reject reason=dmarc") != std::string::npos);

    // dmarc_reject = none: accepted, the verdict only in the header
    World lenient(no_greylist + "[milter]\ndmarc_reject = none\n");
    out = lenient.run(t);
    CHECK(out.accepted());
    auto ar = out.added("Authentication-Results");
    CHECK(ar.find("dkim=fail") != std::string::npos);
    CHECK(ar.find("dmarc=fail (p=reject) header.from=sender.test") != std::string::npos);
}

TEST_CASE("p=quarantine: header by default, hold queue with dmarc_quarantine=hold", "[milter]") {
    Transaction t;
    t.sender = "x@quar.test";
    t.headers = headers_from("x@quar.test");
    {
        World w;
        auto out = w.run(t);
        CHECK(out.accepted());
        CHECK(out.added("X-Postwarden-DMARC") == " quarantine");
        CHECK_FALSE(out.quarantined());
    }
    World hold(no_greylist + "[milter]\ndmarc_quarantine = hold\n");
    auto out = hold.run(t);
    CHECK(out.accepted());
    CHECK(out.quarantined());
    CHECK(hold.milter.log().find("action=hold reason=dmarc") != std::string::npos);
}

TEST_CASE("p=none and organizational-domain fallback with sp", "[milter]") {
    World w;
    Transaction t;
    t.sender = "x@none.test";
    t.headers = headers_from("x@none.test");
    auto out = w.run(t);
    CHECK(out.accepted());
    CHECK(out.added("Authentication-Results").find("dmarc=fail (p=none) header.from=none.test") !=
          std::string::npos);

    // sub.org.test has no record: _dmarc.org.test applies, with its sp=reject
    t.sender = "x@sub.org.test";
    t.headers = headers_from("x@sub.org.test");
    out = w.run(t);
    CHECK(out.text == "550 5.7.1 Rejected by DMARC policy for sub.org.test");

    // no record anywhere: dmarc=none
    t.sender = "x@other.test";
    t.headers = headers_from("x@nowhere.test");
    out = w.run(t);
    CHECK(out.accepted());
    CHECK(out.added("Authentication-Results").find("dmarc=none") != std::string::npos);
}

TEST_CASE("temporary DNS errors give temperror and tempfail, never a reject", "[milter]") {
    World w;
    auto t = signed_mail("rsa", "slow");
    t.client_ip = "203.0.113.9";
    auto out = w.run(t);
    INFO(w.milter.log());
    CHECK(out.reply == 'y');
    CHECK(out.text.rfind("451 4.7.1", 0) == 0);

    // the DMARC record itself does not answer and nothing aligns: 451 4.7.5 (SPEC §10)
    Transaction u;
    u.sender = "x@slowdmarc.test";
    u.headers = headers_from("x@slowdmarc.test");
    out = w.run(u);
    CHECK(out.text.rfind("451 4.7.5", 0) == 0);
}

// SPEC §10: when the DMARC record cannot be fetched, mail that neither SPF nor DKIM aligns with
// the From domain is answered 451 4.7.5, never accepted unenforced; aligned mail passes whatever
// the lookup did. At the From domain and at the organizational domain, timeout and SERVFAIL.
TEST_CASE("DMARC policy lookup fails temporarily: 451 4.7.5 unless SPF or DKIM aligns",
          "[milter]") {
    World w;
    auto mail = [](const std::string& from, const std::string& client) {
        Transaction t;
        t.client_ip = client;
        t.sender = from;
        t.headers = headers_from(from);
        return t;
    };
    const std::string unaligned = "451 4.7.5 DMARC policy for ";
    for (const auto& from : {"x@servfail.test", "x@slowdmarc.test", "x@sub.sloworg.test"}) {
        auto out = w.run(mail(from, "203.0.113.9"));
        INFO(from << "\n" << w.milter.log());
        CHECK(out.stage == 'E');
        CHECK(out.text.rfind(unaligned, 0) == 0);
    }
    CHECK(w.milter.log().find("action=tempfail reason=dmarc-temperror") != std::string::npos);

    // SPF passes and aligns: accepted, the lookup's failure shown in the header
    auto out = w.run(mail("x@servfail.test", "192.0.2.10"));
    INFO(w.milter.log());
    CHECK(out.accepted());
    CHECK(out.added("Authentication-Results").find("dmarc=temperror") != std::string::npos);

    // SPF aligns with nothing (another domain), an aligned DKIM signature does
    auto t = mail("x@servfail.test", "192.0.2.10");
    t.sender = "x@other.test";
    out = w.run(t);
    CHECK(out.text.rfind(unaligned, 0) == 0);
    t.headers.insert(t.headers.begin(),
                     {"DKIM-Signature", sign(t.headers, t.body, "rsa", "rsa", "servfail.test")});
    out = w.run(t);
    CHECK(out.accepted());
    CHECK(out.added("Authentication-Results").find("dkim=pass header.d=servfail.test") !=
          std::string::npos);

    // no enforcement configured at all: nothing to wait for
    World lenient(no_greylist + "[milter]\ndmarc_reject = none\ndmarc_quarantine = none\n");
    out = lenient.run(mail("x@servfail.test", "203.0.113.9"));
    CHECK(out.accepted());
    CHECK(out.added("Authentication-Results").find("dmarc=temperror") != std::string::npos);
}

TEST_CASE("l= that leaves the body partly unsigned does not pass", "[milter]") {
    World w;
    Transaction t;
    t.sender = "news@sender.test";
    t.client_ip = "203.0.113.9";
    t.headers = headers_from("news@sender.test");
    t.body = "Signed part.\r\n";
    t.headers.insert(t.headers.begin(),
                     {"DKIM-Signature", sign(t.headers, t.body, "rsa", "rsa", "sender.test",
                                             "relaxed/simple", true)});
    auto full = w.run(t);
    CHECK(full.added("Authentication-Results").find("dkim=pass") != std::string::npos);
    t.body += "Unsigned text appended later.\r\n";
    auto out = w.run(t);
    CHECK(out.text == "550 5.7.1 Rejected by DMARC policy for sender.test");
}

TEST_CASE("forged Authentication-Results claiming our id are removed, highest index first",
          "[milter]") {
    World w;
    auto t = signed_mail("rsa", "rsa");
    std::vector<Header> forged = {
        {"Authentication-Results", "mx.rcpt.example; dmarc=pass header.from=bank.example"},
        {"Authentication-Results", "upstream.example; spf=pass smtp.mailfrom=sender.test"},
        {"Authentication-Results", "MX.RCPT.EXAMPLE(.upstream.example; dkim=pass"}};
    t.headers.insert(t.headers.end(), forged.begin(), forged.end());
    auto out = w.run(t);
    INFO(w.milter.log());
    REQUIRE(out.accepted());
    auto after = apply_modifications(t.headers, out.modifications);
    auto ars = auth_results(after);
    REQUIRE(ars.size() == 2);
    CHECK(ars[0].rfind("mx.rcpt.example;", 0) == 0);
    CHECK(ars[0].find("dkim=pass") != std::string::npos);
    CHECK(ars[1].rfind("upstream.example;", 0) == 0);
    CHECK(after.front().first == "Authentication-Results");  // ours is on top
    CHECK(w.milter.log().find("removed_auth_results=2") != std::string::npos);
}

TEST_CASE("From: none, several fields, several addresses (RFC 7489 6.6.1)", "[milter]") {
    World w;
    Transaction t;
    t.sender = "news@sender.test";
    // no From: nothing to protect, dmarc=none
    t.headers = {{"To", "bob@rcpt.example"}, {"Subject", "no from"}};
    auto out = w.run(t);
    CHECK(out.accepted());
    CHECK(out.added("Authentication-Results").find("dmarc=none") != std::string::npos);

    // two From fields (CVE-2019-16378 shape): refused like a p=reject failure
    t.headers = headers_from("news@sender.test");
    t.headers.push_back({"From", "ceo@bank.example"});
    out = w.run(t);
    CHECK(out.text.rfind("550 5.7.1 Rejected by DMARC policy", 0) == 0);

    // an unreadable From (unbalanced '<'): refused as well
    t.headers = headers_from("Bank <ceo@bank.example");
    out = w.run(t);
    CHECK(out.text.rfind("550 5.7.1", 0) == 0);

    // one field, two domains: DMARC applies to each; sender.test passes by SPF, sub.org.test
    // fails under sp=reject
    t.headers = headers_from("news@sender.test, x@sub.org.test");
    out = w.run(t);
    CHECK(out.text == "550 5.7.1 Rejected by DMARC policy for sub.org.test");
}

// Postfix hands milters folded header values with bare LF line ends, whatever the client sent;
// the signer hashed CRLF. Found by the e2e test with a real Postfix.
TEST_CASE("folded headers as Postfix passes them (bare LF) still verify", "[milter]") {
    World w;
    for (auto canon : {"relaxed/simple", "simple/simple"}) {
        Transaction t;
        t.sender = "news@sender.test";
        t.headers = headers_from("News <news@sender.test>");
        t.headers.push_back({"Subject", "a subject that is\r\n\tfolded over two lines"});
        t.body = "Hello.\r\n";
        t.headers.insert(t.headers.begin(), {"DKIM-Signature", sign(t.headers, t.body, "rsa", "rsa",
                                                                    "sender.test", canon)});
        for (auto& [name, value] : t.headers) {
            for (auto at = value.find("\r\n"); at != std::string::npos; at = value.find("\r\n"))
                value.erase(at, 1);
        }
        REQUIRE(t.headers[0].second.find('\n') != std::string::npos);  // the signature is folded
        auto out = w.run(t);
        INFO(canon << "\n" << w.milter.log());
        CHECK(out.added("Authentication-Results").find("dkim=pass header.d=sender.test") !=
              std::string::npos);
    }
}

// Resource bounds (HARDENING.md): DMARC costs two lookups per From domain, so a From with more
// than max_from_domains (8) domains is malformed, refused like a p=reject failure; a message
// with more than max_forged_auth_results (64) fields claiming our id is refused rather than
// passed on with forged verdicts the milter did not keep track of.
TEST_CASE("bounds: at most 8 From domains, at most 64 forged Authentication-Results",
          "[milter][bounds]") {
    World w;
    Transaction t;
    t.sender = "news@sender.test";
    std::string eight = "news@sender.test";
    for (int i = 1; i < 8; ++i)
        eight += ", x@d" + std::to_string(i) + ".none.test";
    t.headers = headers_from(eight);
    auto out = w.run(t);
    INFO(w.milter.log());
    CHECK(out.accepted());
    t.headers = headers_from(eight + ", x@d8.none.test");
    out = w.run(t);
    CHECK(out.text.rfind("550 5.7.1 Rejected by DMARC policy", 0) == 0);
    CHECK(w.milter.log().find("more than 8 From domains") != std::string::npos);

    auto forged = signed_mail("rsa", "rsa");
    for (int i = 0; i < 64; ++i)
        forged.headers.push_back({"Authentication-Results", "mx.rcpt.example; dkim=pass"});
    out = w.run(forged);
    REQUIRE(out.accepted());
    CHECK(auth_results(apply_modifications(forged.headers, out.modifications)).size() == 1);
    forged.headers.push_back({"Authentication-Results", "mx.rcpt.example; dkim=pass"});
    out = w.run(forged);
    CHECK(out.text == "550 5.7.1 Too many Authentication-Results fields claiming mx.rcpt.example");
}

TEST_CASE("over a unix socket, header fields and body chunks are not answered", "[milter]") {
    constexpr unsigned long no_replies = 0x80 | 0x80000;  // SMFIP_NR_HDR | SMFIP_NR_BODY
    MilterWorld unix_world(no_greylist, MilterProcess::Socket::unix_socket);
    World inet_world;
    for (auto* w : {&unix_world, static_cast<MilterWorld*>(&inet_world)}) {
        bool unix_socket = w == &unix_world;
        INFO((unix_socket ? "unix" : "inet") << "\n" << w->milter.log());
        // the same verdicts either way: a signed message passes, a broken signature fails
        auto good = signed_mail("rsa", "rsa");
        auto bad = good;
        bad.body += "appended\r\n";
        for (const auto* t : {&good, &bad}) {
            MilterClient client(w->milter);
            auto out = client.run(*t);
            CHECK((client.protocol() & no_replies) == (unix_socket ? no_replies : 0));
            CHECK(out.stage == 'E');
            auto ar = out.added("Authentication-Results");
            CHECK(ar.find(t == &good ? "dkim=pass" : "dkim=fail") != std::string::npos);
        }
    }
}

// SPEC §5: our id is removed on every path, not only where the milter verifies. A web
// application on 127.0.0.1, a SASL user or a local sendmail(1) user must not be able to deliver
// "Authentication-Results: <our id>; dmarc=pass" to a local mailbox.
TEST_CASE("forged Authentication-Results: removed from authenticated, trusted and local mail",
          "[milter]") {
    World w;
    const std::vector<Header> forged = {
        {"Authentication-Results", "mx.rcpt.example; dmarc=pass header.from=bank.example"},
        {"Authentication-Results", "upstream.example; spf=pass smtp.mailfrom=bank.example"},
        {"Authentication-Results", "(c) \"MX.rcpt.example\"; dkim=pass header.d=bank.example"}};
    Transaction sasl;
    sasl.client_ip = "198.51.100.44";
    sasl.login = "alice@rcpt.example";
    sasl.sender = "alice@rcpt.example";
    Transaction trusted;
    trusted.client_ip = "127.0.0.1";
    trusted.sender = "www-data@rcpt.example";
    Transaction local;
    local.client_ip = "";  // sendmail(1) under non_smtpd_milters: no client address
    local.sender = "www-data@rcpt.example";
    for (auto* t : {&sasl, &trusted, &local}) {
        t->headers = headers_from("alice@rcpt.example");
        t->headers.insert(t->headers.end(), forged.begin(), forged.end());
        auto out = w.run(*t);
        INFO("client " << t->client_ip << " login " << t->login << "\n" << w.milter.log());
        REQUIRE(out.accepted());
        auto ars = auth_results(apply_modifications(t->headers, out.modifications));
        REQUIRE(ars.size() == 1);
        CHECK(ars[0].rfind("upstream.example;", 0) == 0);
        CHECK(out.added("Authentication-Results").empty());  // outbound: no verdict of ours
    }
    CHECK(w.milter.log().find("action=accept reason=outbound login=alice@rcpt.example "
                              "removed_auth_results=2") != std::string::npos);

    // S8 off: an authenticated session is not checked at all, and still cleaned
    World unchecked(no_greylist + "[milter]\nenforce_from = no\n");
    sasl.headers = headers_from("someone@bank.example");
    sasl.headers.insert(sasl.headers.end(), forged.begin(), forged.end());
    auto out = unchecked.run(sasl);
    REQUIRE(out.accepted());
    CHECK(auth_results(apply_modifications(sasl.headers, out.modifications)).size() == 1);

    // more than the milter keeps track of: refused on these paths too
    for (int i = 0; i < 64; ++i)
        trusted.headers.push_back({"Authentication-Results", "mx.rcpt.example; dkim=pass"});
    out = w.run(trusted);
    CHECK(out.text == "550 5.7.1 Too many Authentication-Results fields claiming mx.rcpt.example");
}

// RFC 8301: rsa-sha1 signatures and RSA keys under 1024 bits never count as valid. They are
// reported dkim=policy (RFC 8601 §2.7.1: signed, but not acceptable to us) with the reason, and
// DMARC does not pass on them: with SPF failing, p=reject refuses the message.
TEST_CASE("RFC 8301: rsa-sha1 and RSA keys under 1024 bits do not pass", "[milter]") {
    World lenient(no_greylist + "[milter]\ndmarc_reject = none\n");
    World w;
    struct Row {
        const char *kind, *selector, *in_results;
    };
    const std::vector<Row> rows = {
        {"rsa-sha1", "rsa",
         "dkim=policy (rsa-sha1 is not accepted, RFC 8301) header.d=sender.test header.s=rsa "
         "header.a=rsa-sha1"},
        {"rsa512", "rsa512",
         "dkim=policy (RSA key of 512 bits, under 1024, RFC 8301) header.d=sender.test "
         "header.s=rsa512 header.a=rsa-sha256"},
        {"rsa768", "rsa768",
         "dkim=policy (RSA key of 768 bits, under 1024, RFC 8301) header.d=sender.test "
         "header.s=rsa768 header.a=rsa-sha256"},
    };
    for (const auto& row : rows) {
        Transaction t;
        t.sender = "news@sender.test";
        t.client_ip = "203.0.113.9";  // SPF fails: only DKIM could make DMARC pass
        t.headers = headers_from("news@sender.test");
        t.headers.insert(t.headers.begin(), {"DKIM-Signature", sign(t.headers, t.body, row.kind,
                                                                    row.selector, "sender.test")});
        auto out = lenient.run(t);
        INFO(row.kind << "\n" << lenient.milter.log());
        REQUIRE(out.accepted());
        auto ar = out.added("Authentication-Results");
        CHECK(ar.find(row.in_results) != std::string::npos);
        CHECK(ar.find("dmarc=fail") != std::string::npos);
        CHECK(w.run(t).text == "550 5.7.1 Rejected by DMARC policy for sender.test");
    }
}
