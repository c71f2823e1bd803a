// inbound_decision_test.cpp — the milter's end-of-message decision for inbound mail
// (milter/inbound_decision.hpp) as a table: each row the Facts the lookups found and the
// configuration, and the Decision expected; then the log line, field by field.
#include <catch2/catch.hpp>

#include "milter/inbound_decision.hpp"

using namespace postwarden;
using namespace postwarden::milter;

namespace {

using Step = Effects::Step;
using Lookup = Decision::Lookup;
using Deferred = GreylistFacts::Deferred;

dmarc::Evaluation dmarc_eval(dmarc::Result result, std::string domain,
                             dmarc::Policy policy = dmarc::Policy::reject) {
    dmarc::Evaluation e;
    e.result = result;
    e.from_domain = std::move(domain);
    e.policy = e.published = policy;
    e.aligned = result == dmarc::Result::pass;
    return e;
}

// A message from alice@example.com, SPF and DKIM passing and aligned, DMARC pass (p=reject).
Facts passing() {
    Facts f;
    f.queue_id = "4BXq1k2Yz";
    f.client = parse_ip("203.0.113.5");
    f.sender = "alice@example.com";
    f.spf_mailfrom = spf::Outcome{spf::Result::pass, "example.com", "", false};
    f.signatures = {{dkim::Result::pass, "example.com", "sel", "rsa-sha256", ""}};
    f.from = read_from({"Alice <alice@example.com>"}, 1, false);
    f.evaluations = {dmarc_eval(dmarc::Result::pass, "example.com")};
    f.dkim_aligned = true;
    return f;
}

// Not trusted for S2: the DKIM signature is a third party's.
Facts unaligned() {
    auto f = passing();
    f.signatures = {{dkim::Result::pass, "mailer.example.net", "s", "rsa-sha256", ""}};
    f.dkim_aligned = false;
    return f;
}

Facts failing(dmarc::Policy policy) {
    auto f = unaligned();
    f.spf_mailfrom->result = spf::Result::fail;
    f.evaluations = {dmarc_eval(dmarc::Result::fail, "example.com", policy)};
    return f;
}

Config config(bool greylist = true) {
    auto c = default_config();
    c.milter.authserv_id = "mx.example.org";
    c.milter.dmarc_reject = "reject";
    c.milter.dmarc_quarantine = "header";
    c.greylist.enabled = greylist;
    c.greylist.trust_authenticated = true;
    c.greylist.auto_allow_clients = 0;
    c.greylist.fail_mode = FailMode::open;
    return c;
}

// Every member has an initializer, so that a row names only what it expects.
struct Want {
    Lookup lookup = Lookup::none;
    std::string action{}, reason{};
    std::optional<std::string> note{};
    Step step = Step::accept;
    std::string rcode{}, xcode{}, text{};
    std::vector<int> removed{};
    std::vector<std::string> headers{};  // names of the fields inserted, in order
    std::string quarantine{};
    bool count_auto_allow = false;
};

struct Row {
    std::string name;
    Facts facts;
    Config config;
    Want want;
};

const std::vector<std::string> ar = {"Authentication-Results"};

std::vector<Row> rows() {
    std::vector<Row> t;
    t.push_back({"verified: greylisting off",
                 passing(),
                 config(false),
                 {.action = "accept", .reason = "verified", .headers = ar}});
    t.push_back({"trusted: SPF passes and DKIM aligns",
                 passing(),
                 config(),
                 {.action = "accept", .reason = "trusted", .headers = ar}});
    {
        auto f = passing();
        f.spf_mailfrom->result = spf::Result::softfail;
        t.push_back({"aligned DKIM without SPF pass is not trusted: greylist lookup",
                     f,
                     config(),
                     {.lookup = Lookup::greylist}});
    }
    t.push_back({"not trusted, not looked up yet: greylist lookup",
                 unaligned(),
                 config(),
                 {.lookup = Lookup::greylist}});
    {
        auto f = unaligned();
        f.greylist = GreylistFacts{Deferred::yes, "bob@example.org:new", false};
        t.push_back({"greylist deferral",
                     f,
                     config(),
                     {.action = "tempfail",
                      .reason = "greylist",
                      .step = Step::tempfail,
                      .rcode = "451",
                      .xcode = "4.7.1",
                      .text = "Greylisted, please try again later"}});
    }
    {
        auto f = unaligned();
        f.greylist = GreylistFacts{Deferred::unavailable, "", false};
        auto closed = config();
        closed.greylist.fail_mode = FailMode::closed;
        t.push_back({"greylist unavailable, fail closed",
                     f,
                     closed,
                     {.action = "tempfail",
                      .reason = "greylist",
                      .step = Step::tempfail,
                      .rcode = "451",
                      .xcode = "4.3.0",
                      .text = "Policy service unavailable"}});
        t.push_back({"greylist unavailable, fail open",
                     f,
                     config(),
                     {.action = "accept", .reason = "verified", .headers = ar}});
    }
    {
        auto f = unaligned();
        f.greylist = GreylistFacts{Deferred::no, "bob@example.org:pass", true};
        t.push_back(
            {"greylist passed: accepted, counted for auto-allow",
             f,
             config(),
             {.action = "accept", .reason = "verified", .headers = ar, .count_auto_allow = true}});
        f.spf_mailfrom->result = spf::Result::fail;
        t.push_back({"greylist passed but SPF fail: not counted",
                     f,
                     config(),
                     {.action = "accept", .reason = "verified", .headers = ar}});
    }
    {
        auto c = config();
        c.greylist.trust_authenticated = false;
        c.greylist.auto_allow_clients = 5;
        t.push_back({"policyd greylisted: auto-allow lookup",
                     unaligned(),
                     c,
                     {.lookup = Lookup::auto_allow}});
        auto f = unaligned();
        f.auto_allow_countable = true;
        t.push_back(
            {"policyd greylisted, passed: counted",
             f,
             c,
             {.action = "accept", .reason = "verified", .headers = ar, .count_auto_allow = true}});
        c.greylist.auto_allow_clients = 0;
        t.push_back({"policyd greylisted, auto-allow off: no lookup",
                     unaligned(),
                     c,
                     {.action = "accept", .reason = "verified", .headers = ar}});
    }
    t.push_back({"DMARC fail p=reject: reject, before greylisting",
                 failing(dmarc::Policy::reject),
                 config(),
                 {.action = "reject",
                  .reason = "dmarc",
                  .note = "dmarc=fail p=reject",
                  .step = Step::reject,
                  .rcode = "550",
                  .xcode = "5.7.1",
                  .text = "Rejected by DMARC policy for example.com"}});
    {
        auto f = passing();
        f.from = read_from({"a@example.com", "b@example.com"}, 2, false);
        f.evaluations.clear();
        t.push_back({"malformed From: reject without a domain",
                     f,
                     config(),
                     {.action = "reject",
                      .reason = "dmarc",
                      .note = "malformed From: several From fields",
                      .step = Step::reject,
                      .rcode = "550",
                      .xcode = "5.7.1",
                      .text = "Rejected by DMARC policy: malformed From: several From fields"}});
    }
    {
        auto f = failing(dmarc::Policy::reject);
        f.evaluations.front().maybe_temporary = true;
        t.push_back({"DMARC-unsure: a failure a temporary error may have caused",
                     f,
                     config(),
                     {.action = "tempfail",
                      .reason = "dmarc-temperror",
                      .step = Step::tempfail,
                      .rcode = "451",
                      .xcode = "4.7.1",
                      .text = "DMARC policy for example.com could not be evaluated, try again "
                              "later"}});
    }
    {
        auto f = unaligned();
        f.evaluations = {dmarc_eval(dmarc::Result::temperror, "example.com")};
        f.evaluations.front().aligned = false;
        t.push_back({"DMARC temperror, nothing aligned: 451 4.7.5",
                     f,
                     config(),
                     {.action = "tempfail",
                      .reason = "dmarc-temperror",
                      .note = "record lookup failed, nothing aligned",
                      .step = Step::tempfail,
                      .rcode = "451",
                      .xcode = "4.7.5",
                      .text = "DMARC policy for example.com could not be looked up, try again "
                              "later"}});
    }
    {
        auto f = failing(dmarc::Policy::quarantine);
        f.greylist = GreylistFacts{Deferred::no, "", true};
        t.push_back({"p=quarantine, dmarc_quarantine=header: marked, not counted",
                     f,
                     config(),
                     {.action = "accept",
                      .reason = "dmarc",
                      .headers = {"Authentication-Results", "X-Postwarden-DMARC"}}});
        auto hold = config();
        hold.milter.dmarc_quarantine = "hold";
        t.push_back({"p=quarantine, dmarc_quarantine=hold",
                     f,
                     hold,
                     {.action = "hold",
                      .reason = "dmarc",
                      .headers = ar,
                      .quarantine = "DMARC policy for example.com"}});
        auto r = failing(dmarc::Policy::reject);
        r.greylist = f.greylist;
        auto quarantine = config();
        quarantine.milter.dmarc_reject = "quarantine";
        t.push_back({"p=reject, dmarc_reject=quarantine: hold",
                     r,
                     quarantine,
                     {.action = "hold",
                      .reason = "dmarc",
                      .headers = ar,
                      .quarantine = "DMARC policy for example.com"}});
        auto none = failing(dmarc::Policy::none);
        none.greylist = f.greylist;
        t.push_back({"p=none failure: accepted, reason dmarc, not counted",
                     none,
                     config(),
                     {.action = "accept", .reason = "dmarc", .headers = ar}});
    }
    {
        auto f = passing();
        f.forged_auth_results = {1, 3, 4};
        t.push_back(
            {"forged Authentication-Results removed, highest first",
             f,
             config(),
             {.action = "accept", .reason = "trusted", .removed = {4, 3, 1}, .headers = ar}});
        auto r = failing(dmarc::Policy::reject);
        r.forged_auth_results = {2};
        t.push_back({"forged Authentication-Results left in a rejected message",
                     r,
                     config(),
                     {.action = "reject",
                      .reason = "dmarc",
                      .note = "dmarc=fail p=reject",
                      .step = Step::reject,
                      .rcode = "550",
                      .xcode = "5.7.1",
                      .text = "Rejected by DMARC policy for example.com"}});
    }
    return t;
}

std::vector<std::string> names(const Effects& e) {
    std::vector<std::string> n;
    for (const auto& [name, value] : e.insert_headers)
        n.push_back(name);
    return n;
}

}  // namespace

TEST_CASE("milter end of message: decide() as a table", "[unit][milter][decide]") {
    for (const auto& row : rows()) {
        INFO(row.name);
        const auto d = decide(row.facts, row.config);
        const auto& w = row.want;
        CHECK(d.lookup == w.lookup);
        if (w.lookup != Lookup::none) continue;  // not final: nothing else is decided yet
        CHECK(d.action == w.action);
        CHECK(d.reason == w.reason);
        CHECK(d.note == w.note);
        CHECK(d.effects.step == w.step);
        CHECK(d.effects.rcode == w.rcode);
        CHECK(d.effects.xcode == w.xcode);
        CHECK(d.effects.text == w.text);
        CHECK(d.effects.remove_auth_results == w.removed);
        CHECK(names(d.effects) == w.headers);
        CHECK(d.effects.quarantine == w.quarantine);
        CHECK(d.count_auto_allow == w.count_auto_allow);
    }
}

TEST_CASE("milter end of message: our Authentication-Results and the DMARC mark",
          "[unit][milter][decide]") {
    auto f = failing(dmarc::Policy::quarantine);
    f.greylist = GreylistFacts{};
    const auto d = decide(f, config());
    REQUIRE(d.effects.insert_headers.size() == 2);
    CHECK(d.effects.insert_headers[0].second ==
          "mx.example.org;\n\tspf=fail smtp.mailfrom=example.com;\n\t"
          "dkim=pass header.d=mailer.example.net header.s=s header.a=rsa-sha256;\n\t"
          "dmarc=fail (p=quarantine) header.from=example.com");
    CHECK(d.effects.insert_headers[1].second == "quarantine");
}

TEST_CASE("milter end of message: the log line, fields in a fixed order",
          "[unit][milter][decide]") {
    auto f = passing();
    CHECK(log_line(f, decide(f, config(false))) ==
          "4BXq1k2Yz: action=accept reason=verified client=203.0.113.5 "
          "sender=<alice@example.com> spf=pass dkim=pass:example.com dmarc=pass:example.com");

    f = unaligned();
    f.queue_id.clear();
    f.client.reset();
    f.forged_auth_results = {2, 5};
    f.greylist = GreylistFacts{Deferred::no, "", false};
    CHECK(log_line(f, decide(f, config())) ==
          "NOQUEUE: action=accept reason=verified client=unknown sender=<alice@example.com> "
          "spf=pass dkim=pass:mailer.example.net dmarc=pass:example.com greylist=- "
          "removed_auth_results=2");

    f.greylist = GreylistFacts{Deferred::yes, "bob@example.org:new", false};
    CHECK(log_line(f, decide(f, config())) ==
          "NOQUEUE: action=tempfail reason=greylist client=unknown sender=<alice@example.com> "
          "spf=pass dkim=pass:mailer.example.net dmarc=pass:example.com "
          "greylist=bob@example.org:new");

    auto r = failing(dmarc::Policy::reject);
    r.sender = "evil\r\n@example.com";
    r.signatures.clear();
    CHECK(log_line(r, decide(r, config())) ==
          "4BXq1k2Yz: action=reject reason=dmarc dmarc=fail p=reject client=203.0.113.5 "
          "sender=<evil??@example.com> spf=fail dkim=none dmarc=fail:example.com");

    auto t = unaligned();
    t.evaluations = {dmarc_eval(dmarc::Result::temperror, "example.com")};
    t.evaluations.front().aligned = false;
    CHECK(log_line(t, decide(t, config())) ==
          "4BXq1k2Yz: action=tempfail reason=dmarc-temperror record lookup failed, nothing "
          "aligned client=203.0.113.5 sender=<alice@example.com> spf=pass "
          "dkim=pass:mailer.example.net dmarc=temperror:example.com");
}
