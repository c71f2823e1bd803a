// auth_test.cpp — postwarden-policyd's Dovecot auth-policy server (SPEC §8) over real HTTP
// against a real redis-server: lockouts and their message, the tarpit, block:auth and
// block:login, the API key, bad input of each kind (answered, counted, nothing written), two
// policyd sharing counts, Redis down per fail_mode.
#include <catch2/catch.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <thread>

#include "tests/fixtures/policyd_process.hpp"
#include "tests/fixtures/redis_server.hpp"

using namespace postwarden::test;
using namespace std::chrono_literals;

namespace {

struct HttpReply {
    int status = 0;  // 0: no answer (the connection closed)
    std::string body;
};

// A keep-alive HTTP/1.1 client, blocking, as Dovecot's would be.
class HttpClient {
  public:
    explicit HttpClient(unsigned short port) : fd_(connect_loopback(port)) {
        timeval tv{10, 0};
        setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    ~HttpClient() {
        if (fd_ >= 0) close(fd_);
    }
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    // True when the server closed the connection within timeout (nothing was answered).
    bool closed_within(std::chrono::milliseconds timeout) {
        pollfd p{fd_, POLLIN, 0};
        if (poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
        char c;
        return ::recv(fd_, &c, 1, MSG_PEEK) <= 0;
    }

    void send_raw(const std::string& bytes) {
        (void)!::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    }

    HttpReply post(const std::string& target, const std::string& body,
                   const std::string& headers = "X-API-Key: k3y\r\n") {
        send_raw("POST " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers +
                 "Content-Type: application/json\r\nContent-Length: " +
                 std::to_string(body.size()) + "\r\n\r\n" + body);
        return read_reply();
    }

    HttpReply read_reply() {
        HttpReply r;
        std::size_t end;
        while ((end = buffer_.find("\r\n\r\n")) == std::string::npos)
            if (!fill()) return r;
        auto head = buffer_.substr(0, end);
        r.status = std::stoi(head.substr(9, 3));
        std::size_t length = 0;
        auto at = head.find("Content-Length: ");
        if (at != std::string::npos) length = std::stoul(head.substr(at + 16));
        while (buffer_.size() < end + 4 + length)
            if (!fill()) return {};
        r.body = buffer_.substr(end + 4, length);
        buffer_.erase(0, end + 4 + length);
        return r;
    }

  private:
    bool fill() {
        char chunk[4096];
        auto n = ::recv(fd_, chunk, sizeof chunk, 0);
        if (n <= 0) return false;
        buffer_.append(chunk, static_cast<std::size_t>(n));
        return true;
    }
    int fd_;
    std::string buffer_;
};

std::string allow_body(const std::string& login, const std::string& remote) {
    return R"({"login":")" + login + R"(","pwhash":"12a","remote":")" + remote +
           R"(","device_id":"","protocol":"imap","session_id":"s1"})";
}

std::string report_body(const std::string& login, const std::string& remote, bool success,
                        bool policy_reject = false) {
    return R"({"login":")" + login + R"(","pwhash":"12a","remote":")" + remote +
           R"(","device_id":"","protocol":"imap","session_id":"s1","success":)" +
           (success ? "true" : "false") + R"(,"policy_reject":)" +
           (policy_reject ? "true" : "false") + "}";
}

struct AuthDaemon {
    unsigned short auth_port = free_port();
    unsigned short metrics_port = free_port();
    PolicydProcess policyd;

    AuthDaemon(RedisServer& redis, const std::string& auth_extra)
        : policyd(config(redis, "api_key = k3y\n" + auth_extra)) {}

    // timeout_ms is generous: these tests are about counting, and a loaded test machine must
    // not turn a slow Redis answer into a fail_mode answer that counts nothing.
    std::string config(RedisServer& redis, const std::string& auth_section) const {
        return "[redis]\naddress = " + redis.endpoint().to_string() +
               "\ntimeout_ms = 2000\n[policyd]\nlisten = 127.0.0.1:{port}\n"
               "[greylist]\nenabled = no\n[metrics]\npolicyd_listen = 127.0.0.1:" +
               std::to_string(metrics_port) +
               "\n[auth]\nlisten = 127.0.0.1:" + std::to_string(auth_port) + "\n" + auth_section;
    }

    std::string allow(const std::string& login, const std::string& remote) {
        HttpClient c(auth_port);
        return c.post("/?command=allow", allow_body(login, remote)).body;
    }
    void fail(const std::string& login, const std::string& remote) {
        HttpClient c(auth_port);
        REQUIRE(c.post("/?command=report", report_body(login, remote, false)).status == 200);
    }
    std::string metrics() {
        HttpClient c(metrics_port);
        c.send_raw("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        return c.read_reply().body;
    }
};

const std::string allowed = R"({"msg":"","status":0})";

bool has_line(const std::string& text, const std::string& line) {
    return text.find("\n" + line + "\n") != std::string::npos;
}

}  // namespace

TEST_CASE("auth policy: a client is locked after ip_lockout failures, others are not",
          "[policyd][auth][cluster]") {
    RedisServer redis;
    AuthDaemon d(redis, "ip_lockout = 3/60\nlockout_time = 2\ntarpit_after = 0\n");
    HttpClient c(d.auth_port);  // one keep-alive connection for all of it
    for (int i = 0; i < 2; ++i) {
        CHECK(c.post("/?command=allow", allow_body("bob", "192.0.2.7")).body == allowed);
        CHECK(c.post("/?command=report", report_body("bob", "192.0.2.7", false)).status == 200);
    }
    // a success resets nothing
    CHECK(c.post("/?command=report", report_body("alice", "192.0.2.7", true)).status == 200);
    CHECK(c.post("/?command=report", report_body("carol", "192.0.2.7", false)).status == 200);
    auto locked = c.post("/?command=allow", allow_body("alice", "192.0.2.7"));
    CHECK(locked.status == 200);
    CHECK(locked.body.find(R"("status":-1)") != std::string::npos);
    CHECK(locked.body.find(R"("msg":"Too many failed logins, try again after 20)") !=
          std::string::npos);
    CHECK(locked.body.find(R"(Z")") != std::string::npos);
    // after authentication too, and whoever logs in
    CHECK(c.post("/?command=allow", allow_body("dave", "192.0.2.7")).body == locked.body);
    // attempts while locked neither count nor extend the lockout
    const auto until = redis.run({"GET", "pw:auth:{addr:192.0.2.7}:lock"}).str;
    CHECK(c.post("/?command=report", report_body("x", "192.0.2.7", false, true)).status == 200);
    CHECK(c.post("/?command=report", report_body("x", "192.0.2.7", false)).status == 200);
    CHECK(c.post("/?command=allow", allow_body("dave", "192.0.2.7")).body == locked.body);
    CHECK(redis.run({"GET", "pw:auth:{addr:192.0.2.7}:lock"}).str == until);
    CHECK(redis.run({"EXISTS", "pw:auth:{addr:192.0.2.7}:fails"}).integer == 0);
    CHECK(redis.run({"ZSCORE", "pw:auth:locked", "192.0.2.7"}).str == until);  // for `blocked`
    // another client is not locked
    CHECK(c.post("/?command=allow", allow_body("bob", "192.0.2.8")).body == allowed);
    // every key has a TTL
    for (const auto& k : redis.run({"KEYS", "*"}).elements)
        CHECK(redis.run({"PTTL", k.str}).integer > 0);
    CHECK(wait_until(
        [&] {
            return d.policyd.log().find(
                       "action=lockout client=192.0.2.7 "
                       "login=carol failures=3/60 until=") != std::string::npos;
        },
        2s));
    CHECK(d.policyd.log().find("action=refuse reason=client-locked client=192.0.2.7 login=alice") !=
          std::string::npos);
    auto m = d.metrics();
    CHECK(has_line(m, "postwarden_policyd_auth_lockouts_total 1"));
    CHECK(has_line(
        m, R"(postwarden_policyd_auth_requests_total{command="allow",result="client-locked"} 3)"));
    CHECK(has_line(
        m, R"(postwarden_policyd_auth_requests_total{command="report",result="policy-reject"} 1)"));
    // the lockout ends lockout_time after the failure that locked it, and counting starts afresh
    CHECK(wait_until([&] { return d.allow("alice", "192.0.2.7") == allowed; }, 4s));
    d.fail("bob", "192.0.2.7");
    CHECK(d.allow("bob", "192.0.2.7") == allowed);
    CHECK(has_line(d.metrics(), "postwarden_policyd_auth_lockouts_total 1"));
}

TEST_CASE("auth policy: an IPv6 client is counted per /64", "[policyd][auth]") {
    RedisServer redis;
    AuthDaemon d(redis, "ip_lockout = 2/60\ntarpit_after = 0\n");
    d.fail("a", "2001:db8:0:1::1");
    d.fail("b", "2001:db8:0:1:ffff::2");
    CHECK(d.allow("c", "2001:db8:0:1::3").find(R"("status":-1)") != std::string::npos);
    CHECK(d.allow("c", "2001:db8:0:2::3") == allowed);
    CHECK(redis.run({"EXISTS", "pw:auth:{addr:2001:db8:0:1::/64}:lock"}).integer == 1);
}

TEST_CASE("auth policy: a login is delayed 1, 2, 4 ... 15 s after tarpit_after failures",
          "[policyd][auth]") {
    RedisServer redis;
    AuthDaemon d(redis, "ip_lockout = 100/60\ntarpit_after = 2\n");
    std::vector<std::string> answers;
    for (int i = 0; i < 8; ++i) {
        answers.push_back(d.allow("Bob", "198.51.100." + std::to_string(i + 1)));
        d.fail("bob", "198.51.100." + std::to_string(i + 1));  // from anywhere: the login counts
    }
    auto delay = [](int s) { return R"({"msg":"","status":)" + std::to_string(s) + "}"; };
    CHECK(answers == std::vector<std::string>{allowed, allowed, delay(1), delay(2), delay(4),
                                              delay(8), delay(15), delay(15)});
    CHECK(d.allow("alice", "198.51.100.1") == allowed);
    // the login's failure log keeps only what the tarpit needs
    CHECK(redis.run({"ZCARD", "pw:auth:{login:bob}:fails"}).integer == 6);
    CHECK(has_line(d.metrics(), "postwarden_policyd_auth_tarpits_total 6"));
}

TEST_CASE("auth policy: block:auth is refused, block:login may log in", "[policyd][auth]") {
    RedisServer redis;
    redis.run({"SADD", "pw:block:auth", "cracked@example.com"});
    redis.run({"SADD", "pw:block:login", "spammer@example.com"});
    AuthDaemon d(redis, "");
    const std::string refused = R"({"msg":"Account locked, contact support","status":-1})";
    CHECK(d.allow("Cracked@Example.com", "192.0.2.1") == refused);
    CHECK(d.allow("cracked@example.com", "127.0.0.1") == refused);  // exempt clients too
    CHECK(d.allow("spammer@example.com", "192.0.2.1") == allowed);
    CHECK(d.policyd.log().find("action=refuse reason=account-locked client=192.0.2.1 "
                               "login=cracked@example.com") != std::string::npos);
}

TEST_CASE("auth policy: exempt_networks are never counted nor locked", "[policyd][auth]") {
    RedisServer redis;
    AuthDaemon d(redis, "ip_lockout = 2/60\ntarpit_after = 0\nexempt_networks = 10.0.0.0/8\n");
    for (int i = 0; i < 4; ++i)
        d.fail("bob", "10.1.2.3");
    CHECK(d.allow("bob", "10.1.2.3") == allowed);
    CHECK(redis.run({"KEYS", "pw:auth:{addr:*"}).elements.empty());
}

TEST_CASE("auth policy: without the API key nothing is counted", "[policyd][auth]") {
    RedisServer redis;
    AuthDaemon d(redis, "ip_lockout = 1/60\n");
    HttpClient c(d.auth_port);
    CHECK(c.post("/?command=report", report_body("bob", "192.0.2.7", false), "").status == 401);
    CHECK(c.post("/?command=report", report_body("bob", "192.0.2.7", false), "X-API-Key: no\r\n")
              .status == 401);
    CHECK(redis.run({"DBSIZE"}).integer == 0);
    CHECK(c.post("/?command=allow", allow_body("bob", "192.0.2.7")).body == allowed);
    CHECK(
        has_line(d.metrics(), R"(postwarden_policyd_auth_bad_requests_total{reason="api-key"} 2)"));
}

TEST_CASE("auth policy: bad requests get their HTTP status and change nothing", "[policyd][auth]") {
    RedisServer redis;
    AuthDaemon d(redis, "ip_lockout = 1/60\n");
    const std::string failure = report_body("bob", "192.0.2.7", false);
    {
        HttpClient c(d.auth_port);
        CHECK(c.post("/?command=report", "not json").status == 400);
        CHECK(c.post("/?command=report", "{\"login\":\"\xff\"}").status == 400);
        CHECK(c.post("/?command=report", R"({"login":"bob","remote":"192.0.2.7"})").status == 400);
        CHECK(c.post("/?command=lock", failure).status == 400);
        CHECK(c.post("/elsewhere?command=report", failure).status == 404);
        c.send_raw("GET /?command=allow HTTP/1.1\r\nHost: x\r\nX-API-Key: k3y\r\n\r\n");
        CHECK(c.read_reply().status == 405);
        // the connection is still usable after all of them
        CHECK(c.post("/?command=allow", allow_body("bob", "192.0.2.7")).body == allowed);
    }
    {
        HttpClient c(d.auth_port);
        CHECK(c.post("/?command=report", std::string(17 * 1024, ' ')).status == 413);
    }
    {
        HttpClient c(d.auth_port);
        c.send_raw("POST /?command=report HTTP/1.1\r\nX-Junk: " + std::string(9000, 'a') +
                   "\r\n\r\n");
        CHECK(c.read_reply().status == 400);
        CHECK(c.read_reply().status == 0);  // and the connection is closed
    }
    CHECK(redis.run({"DBSIZE"}).integer == 0);
    auto m = d.metrics();
    for (auto reason : {"json", "utf8", "fields", "command", "path", "method", "too-large", "http"})
        CHECK(has_line(m, std::string(R"(postwarden_policyd_auth_bad_requests_total{reason=")") +
                              reason + "\"} 1"));
}

TEST_CASE("auth policy: two policyd share the counts, exactly one failure locks",
          "[policyd][auth]") {
    RedisServer redis;
    AuthDaemon one(redis, "ip_lockout = 40/60\ntarpit_after = 0\n");
    AuthDaemon two(redis, "ip_lockout = 40/60\ntarpit_after = 0\n");
    // 39 failures at once from 6 connections on both daemons: none locks
    std::vector<std::thread> threads;
    for (int t = 0; t < 6; ++t)
        threads.emplace_back([&, t] {
            HttpClient c(t % 2 ? one.auth_port : two.auth_port);
            for (int i = t; i < 39; i += 6)
                c.post("/?command=report",
                       report_body("u" + std::to_string(i), "192.0.2.9", false));
        });
    for (auto& t : threads)
        t.join();
    CHECK(redis.run({"ZCARD", "pw:auth:{addr:192.0.2.9}:fails"}).integer == 39);
    CHECK(one.allow("x", "192.0.2.9") == allowed);
    two.fail("y", "192.0.2.9");
    CHECK(one.allow("x", "192.0.2.9").find(R"("status":-1)") != std::string::npos);
    CHECK(two.allow("x", "192.0.2.9").find(R"("status":-1)") != std::string::npos);
}

TEST_CASE("auth policy: Redis down is answered per fail_mode", "[policyd][auth]") {
    RedisServer redis;
    AuthDaemon open(redis, "");
    AuthDaemon closed(redis, "fail_mode = closed\n");
    redis.stop();
    CHECK(open.allow("bob", "192.0.2.7") == allowed);
    CHECK(closed.allow("bob", "192.0.2.7").find(R"("status":-1)") != std::string::npos);
    HttpClient c(open.auth_port);
    CHECK(c.post("/?command=report", report_body("bob", "192.0.2.7", false)).status == 200);
    CHECK(has_line(
        open.metrics(),
        R"(postwarden_policyd_auth_requests_total{command="report",result="unavailable"} 1)"));
}

TEST_CASE("auth policy: a request trickled a byte a second is closed at its deadline",
          "[policyd][auth]") {
    RedisServer redis;
    AuthDaemon d(redis, "");
    HttpClient slow(d.auth_port);
    const auto start = std::chrono::steady_clock::now();
    slow.send_raw("POST /?command=allow HTTP/1.1\r\n");
    bool others_served = true, closed = false;
    for (int i = 0; i < 14 && !closed; ++i) {
        closed = slow.closed_within(1s);
        slow.send_raw("X");  // a header that never ends
        // meanwhile other clients are answered at once
        others_served = others_served && d.allow("bob", "192.0.2.1") == allowed;
    }
    CHECK(others_served);
    CHECK(closed);  // unanswered
    const auto took = std::chrono::steady_clock::now() - start;
    CHECK(took >= 9s);
    CHECK(took < 13s);
}

TEST_CASE("auth policy: past 1024 connections the longest idle one makes room", "[policyd][auth]") {
    RedisServer redis;
    AuthDaemon d(redis, "");
    std::vector<std::unique_ptr<HttpClient>> idle;
    for (int i = 0; i < 1024; ++i) {
        idle.push_back(std::make_unique<HttpClient>(d.auth_port));
        if (i == 0) std::this_thread::sleep_for(200ms);  // the first is the longest idle
    }
    std::this_thread::sleep_for(500ms);  // all accepted
    HttpClient late(d.auth_port);
    CHECK(late.post("/?command=allow", allow_body("bob", "192.0.2.1")).body == allowed);
    CHECK(idle.front()->read_reply().status == 0);  // closed to make room
    CHECK(idle.back()->post("/?command=allow", allow_body("bob", "192.0.2.1")).body == allowed);
}

TEST_CASE("auth policy: SIGHUP changes the [auth] settings of the running server",
          "[policyd][auth]") {
    RedisServer redis;
    AuthDaemon d(redis, "");
    HttpClient c(d.auth_port);
    CHECK(c.post("/?command=allow", allow_body("bob", "192.0.2.7")).body == allowed);
    auto text = d.config(redis, "api_key = n3w\nip_lockout = 1/60\n");
    text.replace(text.find("{port}"), 6, std::to_string(d.policyd.port()));
    std::ofstream(d.policyd.dir() + "/postwarden.conf", std::ios::trunc) << text;
    kill(d.policyd.process().pid(), SIGHUP);
    CHECK(wait_until(
        [&] { return d.policyd.log().find("configuration reloaded") != std::string::npos; }, 5s));
    // on the same connection: the old key no longer opens it, the new one does
    CHECK(wait_until(
        [&] { return c.post("/?command=allow", allow_body("bob", "192.0.2.7")).status == 401; },
        2s));
    CHECK(c.post("/?command=report", report_body("bob", "192.0.2.7", false), "X-API-Key: n3w\r\n")
              .status == 200);
    CHECK(c.post("/?command=allow", allow_body("bob", "192.0.2.7"), "X-API-Key: n3w\r\n")
              .body.find(R"("status":-1)") != std::string::npos);  // ip_lockout 1/60 now
}
