// log_injection_test.cpp — what a client sends cannot forge, overlay or flood policyd's log: a
// real daemon from the build tree, requests over TCP whose values carry CR, ESC and other control
// bytes (the policy protocol ends a line only at LF, so they reach the daemon), and values as long
// as the protocol allows. Each request gives exactly one line, of printable text, of bounded
// length.
#include <catch2/catch.hpp>

#include "tests/fixtures/policyd_process.hpp"
#include "tests/fixtures/redis_server.hpp"

using namespace postwarden::test;

namespace {

// The lines of the daemon's log that contain marker.
std::vector<std::string> lines_with(PolicydProcess& p, const std::string& marker) {
    std::vector<std::string> out;
    auto log = p.log();
    std::size_t start = 0;
    while (start < log.size()) {
        auto end = log.find('\n', start);
        if (end == std::string::npos) end = log.size();
        auto line = log.substr(start, end - start);
        if (line.find(marker) != std::string::npos) out.push_back(line);
        start = end + 1;
    }
    return out;
}

bool printable_ascii(const std::string& s) {
    for (unsigned char c : s)
        if (c < 0x20 || c > 0x7e) return false;
    return true;
}

// Every byte from 0x01 to 0x1f but LF, DEL, and a few bytes that are not UTF-8.
std::string hostile() {
    std::string s;
    for (int c = 1; c < 0x20; ++c)
        if (c != '\n') s.push_back(static_cast<char>(c));
    return s + "\x7f\xc0\xff";
}

}  // namespace

TEST_CASE("log: a request's control bytes and long values give one printable, bounded line",
          "[policyd][log]") {
    RedisServer redis;
    PolicydProcess policyd("[redis]\naddress = " + redis.endpoint().to_string() +
                           "\ntimeout_ms = 200\n[quota]\nlimits = 0\nauto_block = 0\n");
    PolicyClient client(policyd.port());
    const std::string forged =
        "\rpostwarden-policyd[1]: NOQUEUE: action=REJECT reason=forged\x1b[2K";

    // an outbound request (no DNS, no greylisting): its decision line holds every client field
    auto a = inbound("198.51.100.7", "sender" + hostile() + "@example.com",
                     std::string(3500, 'r') + "@elsewhere.example");
    a["sasl_username"] = "user" + hostile();
    a["helo_name"] = "helo" + hostile() + std::string(3500, 'h');
    a["client_name"] = "marker-one" + forged + hostile() + std::string(3500, 'n');
    a["queue_id"] = "Q" + hostile();
    CHECK(client.ask(a) == "DUNNO");

    // a request type that is not smtpd_access_policy is logged with its value
    client.send_raw("request=marker-two" + forged + hostile() + std::string(3000, 'x') +
                    "\nprotocol_state=RCPT\n\n");
    CHECK(client.read_reply() == "DUNNO");

    for (const std::string marker : {"marker-one", "marker-two"}) {
        INFO(marker);
        REQUIRE(wait_until([&] { return !lines_with(policyd, marker).empty(); },
                           std::chrono::seconds(5)));
        auto lines = lines_with(policyd, marker);
        REQUIRE(lines.size() == 1);
        INFO(lines[0]);
        CHECK(printable_ascii(lines[0]));
        CHECK(lines[0].size() < 2048);
        CHECK(lines[0].find("\\x0dpostwarden-policyd[1]: NOQUEUE: action=REJECT") !=
              std::string::npos);
    }
    CHECK(lines_with(policyd, "reason=forged").size() == 2);  // each inside its own line
    CHECK(lines_with(policyd, "marker-one")[0].find("reason=outbound") != std::string::npos);
}
