// config_test.cpp — the configuration loader, its error messages, and the shipped file.
#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <sstream>

#include "common/config.hpp"

using namespace postwarden;

namespace {
std::shared_ptr<const Config> parse(const std::string& text, std::string* error) {
    return parse_config(text, "test.conf", error);
}
std::string error_of(const std::string& text) {
    std::string error;
    auto c = parse(text, &error);
    return c ? "" : error;
}
}  // namespace

TEST_CASE("an empty file gives every default", "[config]") {
    std::string error;
    auto c = parse("", &error);
    REQUIRE(c);
    CHECK(c->redis.address.to_string() == "127.0.0.1:6379");
    CHECK(c->redis.prefix == "pw:");
    CHECK(c->redis.timeout_ms == 250);
    CHECK(c->policyd.listen.size() == 1);
    CHECK(c->policyd.listen[0].port == 10040);
    CHECK(c->policyd.trusted_networks.size() == 2);
    CHECK(c->greylist.delay == 300);
    CHECK(c->greylist.retry_window == 172800);
    CHECK(c->greylist.pass_ttl == 3024000);
    CHECK(c->quota.limits.size() == 2);
    CHECK(c->quota.limits[1].count == 1000);
    CHECK(c->quota.limits[1].seconds == 86400);
    CHECK(c->quota.auto_block.size() == 1);
    CHECK(c->policyd.fail_mode == FailMode::open);
    CHECK(c->greylist.fail_mode == FailMode::open);
    CHECK(c->lists.fail_mode == FailMode::open);
    CHECK(c->quota.fail_mode == FailMode::closed);
    CHECK(!c->milter.authserv_id.empty());
    CHECK(c->replies.blocked_login == "5.7.1 Sender address rejected: Access denied");
}

TEST_CASE("values, inline comments, sections", "[config]") {
    std::string error;
    auto c = parse(
        "# comment\n; comment\n[redis]\naddress = unix:/run/redis.sock   # where\n"
        "password = se#cret\n[policyd]\nlisten = 127.0.0.1:1, [::1]:2, unix:/tmp/p.sock\n"
        "fail_mode = closed\n[greylist]\nfail_mode = open\n[dns]\nnameservers = 127.0.0.1:5353, "
        "::1\n",
        &error);
    REQUIRE(c);
    CHECK(c->redis.address.kind == Endpoint::Kind::unix_socket);
    CHECK(c->redis.password == "se#cret");  // '#' inside a word is not a comment
    CHECK(c->policyd.listen.size() == 3);
    CHECK(c->lists.fail_mode == FailMode::closed);   // inherited
    CHECK(c->greylist.fail_mode == FailMode::open);  // overridden
    CHECK(c->quota.fail_mode == FailMode::closed);
    CHECK(c->dns.nameservers == std::vector<std::string>{"127.0.0.1:5353", "::1"});
}

TEST_CASE("errors name the file, line, section and key", "[config]") {
    CHECK(error_of("[redis]\nadress = x\n") == "test.conf:2: [redis] adress: unknown key");
    CHECK(error_of("\n[redis]\ntimeout_ms = -1\n") ==
          "test.conf:3: [redis] timeout_ms: expected a whole number from 1 to 60000");
    CHECK(error_of("[nope]\n") == "test.conf:1: [nope]: unknown section");
    CHECK(error_of("delay = 3\n") == "test.conf:1: [] delay: key outside of any [section]");
    CHECK(error_of("[greylist]\nenabled = maybe\n") ==
          "test.conf:2: [greylist] enabled: expected yes or no");
    CHECK(error_of("[greylist]\ndelay = 5\ndelay = 6\n") ==
          "test.conf:3: [greylist] delay: set twice (first on line 2)");
    CHECK(error_of("[policyd]\ntrusted_networks = 10.0.0.1/8\n")
              .find("test.conf:2: [policyd] trusted_networks: '10.0.0.1/8': host bits set") == 0);
    CHECK(error_of("[quota]\nlimits = 100/0\n").find("test.conf:2: [quota] limits:") == 0);
    CHECK(error_of("[quota]\nlimits = abc\n").find("expected COUNT/SECONDS") != std::string::npos);
    CHECK(error_of("[greylist]\nretry_window = 100\n") ==
          "test.conf:2: [greylist] retry_window: must be longer than delay (300)");
    CHECK(error_of("[replies]\ngreylisted = 5.7.1 go away\n").find("enhanced status code 4") !=
          std::string::npos);
    CHECK(error_of("[milter]\nlisten = 8891\n").find("inet:PORT@HOST") != std::string::npos);
    CHECK(error_of("[dns]\nnameservers = dns.example\n").find("not an IP address") !=
          std::string::npos);
    CHECK(error_of("[redis]\nprefix = {pw}:\n").find("braces") != std::string::npos);
    CHECK(error_of("[redis\n") == "test.conf:1: []: malformed section header");
    CHECK(error_of("[redis]\njunk\n") == "test.conf:2: [redis]: expected 'key = value'");
}

TEST_CASE("quota windows", "[config]") {
    std::string error;
    auto w = parse_quota_windows("100/3600, 1000/86400", &error);
    REQUIRE(w);
    CHECK(w->size() == 2);
    CHECK(parse_quota_windows("0", &error)->empty());
    CHECK(parse_quota_windows("", &error)->empty());
    CHECK(!parse_quota_windows("100/", &error));
    CHECK(!parse_quota_windows("/60", &error));
    CHECK(!parse_quota_windows("1/60,", &error));
    CHECK(!parse_quota_windows("1x/60", &error));
}

// The shipped conf/postwarden.conf must parse, and set every key of the table to its default,
// each with a comment: it is the operator's reference.
TEST_CASE("conf/postwarden.conf lists every key with its default", "[config]") {
    std::string path = POSTWARDEN_SOURCE_DIR "/conf/postwarden.conf";
    std::ifstream in(path);
    REQUIRE(in);
    std::stringstream text;
    text << in.rdbuf();
    std::string error;
    REQUIRE(parse_config(text.str(), path, &error));
    CHECK(error.empty());

    std::string section;
    std::map<std::string, std::string> lines;  // "section.key" → whole line
    std::istringstream lines_in(text.str());
    for (std::string line; std::getline(lines_in, line);) {
        if (line.rfind("[", 0) == 0) section = line.substr(1, line.find(']') - 1);
        auto eq = line.find(" = ");
        if (line.empty() || line[0] == '#' || eq == std::string::npos) continue;
        lines[section + "." + line.substr(0, eq)] = line.substr(eq + 3);
    }
    for (const auto& key : config_keys()) {
        INFO(key.section << "." << key.name);
        auto it = lines.find(std::string(key.section) + "." + std::string(key.name));
        REQUIRE(it != lines.end());
        CHECK(it->second.rfind(std::string(key.default_value), 0) == 0);
        CHECK(it->second.find('#') != std::string::npos);
    }
    CHECK(lines.size() == config_keys().size());
}

// Least privilege: the accounts a daemon switches to and its milter socket's permissions. The names
// are looked up when the file is read, so a typo stops the start with its line.
TEST_CASE("user, socket_group and socket_mode", "[config]") {
    std::string error;
    auto c = parse(
        "[policyd]\nuser = nobody\n[milter]\nuser = root\nsocket_mode = 640\n"
        "socket_group = nogroup\n",
        &error);
    REQUIRE(c);
    CHECK(c->policyd.user == "nobody");
    CHECK(c->milter.user == "root");
    CHECK(c->milter.socket_mode == 0640);
    CHECK(c->milter.socket_group == "nogroup");
    auto defaults = parse("", &error);
    REQUIRE(defaults);
    CHECK(defaults->policyd.user.empty());
    CHECK(defaults->milter.socket_mode == 0660);
    CHECK(defaults->milter.socket_group.empty());
    CHECK(error_of("[policyd]\nuser = no-such-user-pw\n") ==
          "test.conf:2: [policyd] user: no such user 'no-such-user-pw'");
    CHECK(error_of("[milter]\nuser = -rf\n") == "test.conf:2: [milter] user: no such user '-rf'");
    CHECK(error_of("[milter]\nsocket_group = no-such-group-pw\n") ==
          "test.conf:2: [milter] socket_group: no such group 'no-such-group-pw'");
    for (const char* bad : {"0999", "1777", "rw", "-1"})
        CHECK(error_of(std::string("[milter]\nsocket_mode = ") + bad + "\n") ==
              "test.conf:2: [milter] socket_mode: expected an octal mode from 0000 to 0777, e.g. "
              "0660");
}
