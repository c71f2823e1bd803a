// auth_decision_test.cpp — login protection as pure functions (SPEC §8): the allow decision, the
// tarpit's delays, which reports count, the request reader's refusals, and the key scheme.
#include <catch2/catch.hpp>

#include "common/auth_keys.hpp"
#include "common/config.hpp"
#include "policyd/auth_decision.hpp"
#include "policyd/auth_request.hpp"

using namespace postwarden;
using namespace postwarden::policy;

namespace {

constexpr long long now = 1714557600000;  // 2024-05-01T10:00:00Z

Config::Auth settings() {
    return default_config().auth;
}

std::variant<AuthRequest, AuthRefusal> read(std::string_view target, std::string_view body,
                                            std::optional<std::string_view> key = std::nullopt,
                                            std::string_view method = "POST",
                                            std::string_view api_key = "") {
    return parse_auth_request({method, target, key, body}, api_key);
}

std::string refusal(const std::variant<AuthRequest, AuthRefusal>& r) {
    auto* refused = std::get_if<AuthRefusal>(&r);
    return refused ? std::to_string(refused->http_status) + " " + std::string(refused->reason)
                   : "accepted";
}

}  // namespace

TEST_CASE("auth decision: block:auth refuses with the support message", "[auth]") {
    AuthState s;
    s.account_locked = true;
    s.locked_until = now + 1000;  // the account lock is said first
    auto v = decide_allow(s, now, settings());
    CHECK(v.status == -1);
    CHECK(v.msg == "Account locked, contact support");
    CHECK(v.reason == "account-locked");
}

TEST_CASE("auth decision: a locked client is refused until the lockout ends", "[auth]") {
    AuthState s;
    s.locked_until = now + 3600 * 1000;
    auto v = decide_allow(s, now, settings());
    CHECK(v.status == -1);
    CHECK(v.msg == "Too many failed logins, try again after 2024-05-01T11:00:00Z");
    CHECK(v.reason == "client-locked");
    // a lock Redis still holds after its time is over (clock skew between hosts) does not refuse
    CHECK(decide_allow(s, now + 3600 * 1000, settings()).status == 0);
}

TEST_CASE("auth decision: the tarpit doubles from tarpit_after failures, at most 15 s", "[auth]") {
    CHECK(tarpit_seconds(0, 3) == 0);
    CHECK(tarpit_seconds(2, 3) == 0);
    CHECK(tarpit_seconds(3, 3) == 1);
    CHECK(tarpit_seconds(4, 3) == 2);
    CHECK(tarpit_seconds(5, 3) == 4);
    CHECK(tarpit_seconds(6, 3) == 8);
    CHECK(tarpit_seconds(7, 3) == 15);
    CHECK(tarpit_seconds(1000, 3) == 15);
    CHECK(tarpit_seconds(50, 0) == 0);  // off
    AuthState s;
    s.login_failures = 5;
    auto v = decide_allow(s, now, settings());
    CHECK(v.status == 4);
    CHECK(v.reason == "tarpit");
    CHECK(v.msg.empty());
    CHECK(decide_allow(AuthState{}, now, settings()).status == 0);
}

TEST_CASE("auth decision: only failures that were not our refusals count", "[auth]") {
    CHECK(counts_as_failure(false, false));
    CHECK_FALSE(counts_as_failure(false, true));
    CHECK_FALSE(counts_as_failure(true, false));
}

TEST_CASE("auth decision: fail_mode open allows, closed refuses", "[auth]") {
    CHECK(unavailable_verdict(FailMode::open).status == 0);
    CHECK(unavailable_verdict(FailMode::closed).status == -1);
    CHECK(response_body({-1, "go \"away\"", "x"}) == R"({"msg":"go \"away\"","status":-1})");
}

TEST_CASE("auth request: Dovecot's allow and report bodies are read", "[auth]") {
    auto r = read("/?command=allow",
                  R"({"device_id":"","login":"Bob@Example.COM","protocol":"imap",)"
                  R"("pwhash":"1a2","remote":"192.0.2.7","session_id":"abc","tls":"1"})");
    REQUIRE(refusal(r) == "accepted");
    auto& a = std::get<AuthRequest>(r);
    CHECK(a.command == AuthCommand::allow);
    CHECK(a.login == "bob@example.com");
    CHECK(a.remote->to_string() == "192.0.2.7");
    auto p = read("/?command=report", R"({"login":"x","remote":"","success":false,)"
                                      R"("policy_reject":true})");
    REQUIRE(refusal(p) == "accepted");
    auto& b = std::get<AuthRequest>(p);
    CHECK(b.command == AuthCommand::report);
    CHECK_FALSE(b.remote);
    CHECK_FALSE(b.success);
    CHECK(b.policy_reject);
    // a URL ending in '&' adds its own parameters before command=
    CHECK(refusal(read("/?site=a&command=allow", R"({"login":"x","remote":""})")) == "accepted");
}

TEST_CASE("auth request: each kind of bad input has its status and reason", "[auth]") {
    const std::string ok = R"({"login":"x","remote":"192.0.2.1"})";
    CHECK(refusal(read("/?command=allow", ok, std::nullopt, "GET")) == "405 method");
    CHECK(refusal(read("/other?command=allow", ok)) == "404 path");
    CHECK(refusal(read("/?command=allow", ok, std::nullopt, "POST", "k3y")) == "401 api-key");
    CHECK(refusal(read("/?command=allow", ok, "k3x", "POST", "k3y")) == "401 api-key");
    CHECK(refusal(read("/?command=allow", ok, "k3", "POST", "k3y")) == "401 api-key");
    CHECK(refusal(read("/?command=allow", ok, "k3y", "POST", "k3y")) == "accepted");
    CHECK(refusal(read("/?command=deny", ok)) == "400 command");
    CHECK(refusal(read("/", ok)) == "400 command");
    CHECK(refusal(read("/?command=allow&command=report", ok)) == "400 command");
    CHECK(refusal(read("/?command=allow", std::string(body_limit + 1, ' '))) == "413 too-large");
    CHECK(refusal(read("/?command=allow", "{\"login\":\"\xc3\x28\",\"remote\":\"\"}")) ==
          "400 utf8");
    CHECK(refusal(read("/?command=allow", "{\"login\":\"\xed\xa0\x80\",\"remote\":\"\"}")) ==
          "400 utf8");  // a surrogate
    CHECK(refusal(read("/?command=allow", "{\"login\":")) == "400 json");
    CHECK(refusal(read("/?command=allow", "")) == "400 json");
    CHECK(refusal(read("/?command=allow", std::string(100, '[') + std::string(100, ']'))) ==
          "400 json");
    CHECK(refusal(read("/?command=allow", "[1]")) == "400 fields");
    CHECK(refusal(read("/?command=allow", R"({"remote":"192.0.2.1"})")) == "400 fields");
    CHECK(refusal(read("/?command=allow", R"({"login":"x"})")) == "400 fields");
    CHECK(refusal(read("/?command=allow", R"({"login":1,"remote":""})")) == "400 fields");
    CHECK(refusal(read("/?command=allow", R"({"login":"x","remote":"nope"})")) == "400 fields");
    CHECK(refusal(read("/?command=report", ok)) == "400 fields");  // no success
    CHECK(refusal(read("/?command=report", R"({"login":"x","remote":"","success":"false"})")) ==
          "400 fields");
    CHECK(refusal(read("/?command=allow", "{\"login\":\"" + std::string(login_limit + 1, 'a') +
                                              "\",\"remote\":\"\"}")) == "400 fields");
}

TEST_CASE("auth request: UTF-8 is checked strictly", "[auth]") {
    CHECK(valid_utf8("plain ascii"));
    CHECK(valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
    CHECK_FALSE(valid_utf8("\xc0\xaf"));          // overlong '/'
    CHECK_FALSE(valid_utf8("\xe0\x80\xaf"));      // overlong
    CHECK_FALSE(valid_utf8("\xf4\x90\x80\x80"));  // past U+10FFFF
    CHECK_FALSE(valid_utf8("\xe2\x82"));          // cut short
    CHECK_FALSE(valid_utf8("\x80"));
}

TEST_CASE("auth keys: a v6 client is its /64, every key of one entity shares a hash tag",
          "[auth]") {
    auto config = default_config();
    CHECK(auth_client_id(*parse_ip("192.0.2.7")) == "192.0.2.7");
    CHECK(auth_client_id(*parse_ip("::ffff:192.0.2.7")) == "192.0.2.7");
    CHECK(auth_client_id(*parse_ip("2001:db8:1:2:3:4:5:6")) == "2001:db8:1:2::/64");
    CHECK(parse_auth_client("2001:db8:1:2::/64") == "2001:db8:1:2::/64");
    CHECK(parse_auth_client("2001:db8:1:2::9") == "2001:db8:1:2::/64");
    CHECK_FALSE(parse_auth_client("2001:db8::/48"));
    CHECK_FALSE(parse_auth_client("bob"));
    auto keys = auth_address_keys("192.0.2.7", config);
    CHECK(keys.fails == "pw:auth:{addr:192.0.2.7}:fails");
    CHECK(keys.lock == "pw:auth:{addr:192.0.2.7}:lock");
    CHECK(auth_login_key("a{b}%c", config) == "pw:auth:{login:a%7bb%7d%25c}:fails");
    CHECK(auth_locked_index_key(config) == "pw:auth:locked");
}

TEST_CASE("auth config: [auth] keys are read and bounded", "[auth][config]") {
    std::string error;
    auto c = parse_config(
        "[auth]\nlisten = 127.0.0.1:10041\napi_key = abc\nip_lockout = 5/60\n"
        "tarpit_after = 0\nfail_mode = closed\nexempt_networks = 10.0.0.0/8\n",
        "t.conf", &error);
    REQUIRE(c);
    CHECK(c->auth.listen->to_string() == "127.0.0.1:10041");
    CHECK(c->auth.ip_lockout.count == 5);
    CHECK(c->auth.ip_lockout.seconds == 60);
    CHECK(c->auth.tarpit_after == 0);
    CHECK(c->auth.fail_mode == FailMode::closed);
    CHECK_FALSE(parse_config("[auth]\nlisten = unix:/tmp/x\n", "t.conf", &error));
    CHECK(error.find("[auth] listen") != std::string::npos);
    CHECK_FALSE(parse_config("[auth]\napi_key = a b\n", "t.conf", &error));
    CHECK_FALSE(parse_config("[auth]\nip_lockout = 5/60, 10/600\n", "t.conf", &error));
    CHECK_FALSE(parse_config("[auth]\nlockout_time = 0\n", "t.conf", &error));
    auto d = default_config();
    CHECK_FALSE(d.auth.listen);
    CHECK(d.auth.lockout_time == 3600);
    CHECK(d.auth.tarpit_after == 3);
    CHECK(d.auth.exempt_networks.size() == 2);
}
