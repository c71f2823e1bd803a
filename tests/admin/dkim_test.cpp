// dkim_test.cpp — `postwarden dkim keygen|activate|retire|list|check` (SPEC §9) from the build
// tree against a real redis-server and the test DNS server: key files (mode, owner, never
// overwritten), the records printed, the selector SET, and published keys compared with the files.
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "common/mail/dkim_key.hpp"
#include "tests/admin/support.hpp"
#include "tests/fixtures/dns_server.hpp"

using namespace postwarden;
using namespace postwarden::test;

namespace {

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

// As root the keys go to [milter] user = nobody; otherwise [milter] user is the runner.
uid_t key_owner() {
    if (geteuid() != 0) return geteuid();
    const passwd* pw = getpwnam("nobody");
    REQUIRE(pw);
    return pw->pw_uid;
}

std::string milter_user() {
    const passwd* self = getpwuid(geteuid());
    REQUIRE(self);
    return "[milter]\nuser = " + std::string(geteuid() == 0 ? "nobody" : self->pw_name) + "\n";
}

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

struct DkimCli {
    TempDir keys{"postwarden-dkim-cli"};
    RedisServer redis;
    std::unique_ptr<DnsServer> dns;
    std::unique_ptr<Cli> cli;
    explicit DkimCli(const std::string& zone = "") {
        dns = std::make_unique<DnsServer>(zone);
        cli = std::make_unique<Cli>(redis, milter_user() + "[dkim]\nkey_dir = " + keys.path() +
                                               "/dkim\n[dns]\nnameservers = " + dns->nameserver() +
                                               "\ntimeout_ms = 500\n");
    }
    RunResult run(const std::vector<std::string>& args) const { return cli->run(args); }
    std::string path(const std::string& domain, const std::string& selector) const {
        return dkim::key_path(keys.path() + "/dkim", domain, selector);
    }
};

}  // namespace

TEST_CASE("dkim keygen: keys 0600 for the milter's user, records printed, nothing replaced",
          "[admin][dkim-cli]") {
    DkimCli t;
    auto r = t.run({"dkim", "keygen", "Example.COM", "--bits", "1024"});
    INFO(r.out << r.err);
    REQUIRE(r.code == 0);
    char month[8];
    const std::time_t now = std::time(nullptr);
    std::strftime(month, sizeof month, "%Y%m", std::gmtime(&now));
    const std::string rsa = std::string("rsa-") + month, ed = std::string("ed-") + month;
    for (const auto& selector : {rsa, ed}) {
        struct stat st {};
        REQUIRE(stat(t.path("example.com", selector).c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);
        CHECK(st.st_uid == key_owner());
        std::string why;
        auto key = dkim::read_key_file(t.path("example.com", selector), key_owner(), &why);
        REQUIRE(key);
        // The record printed is the key's, in zone-file form.
        CHECK(contains(r.out, selector + "._domainkey.example.com. IN TXT ( \"v=DKIM1; k=" +
                                  std::string(dkim::key_tag_of(key->type)) + "; p="));
        CHECK(contains(r.out, key->public_key.substr(0, 200)));
    }
    struct stat dir {};
    REQUIRE(stat((t.keys.path() + "/dkim/example.com").c_str(), &dir) == 0);
    CHECK((dir.st_mode & 0777) == 0700);
    CHECK(dir.st_uid == key_owner());
    // Nothing activated.
    CHECK(t.redis.run({"EXISTS", "pw:dkim:selectors:example.com"}).integer == 0);
    // The same selectors again: refused, the keys unchanged.
    const auto before = slurp(t.path("example.com", rsa));
    r = t.run({"dkim", "keygen", "example.com", "--type", "rsa", "--bits", "1024"});
    CHECK(r.code == 2);
    CHECK(contains(r.err, "never overwritten"));
    CHECK(slurp(t.path("example.com", rsa)) == before);
    // One Ed25519 key with its own selector, as JSON.
    r = t.run({"--json", "dkim", "keygen", "example.com", "--type", "ed25519", "--selector", "s2"});
    REQUIRE(r.code == 0);
    CHECK(json_query(r.out, "[k['selector'] + ' ' + k['algorithm'] for k in d['keys']]") ==
          "[\"s2 ed25519-sha256\"]");
    for (const auto& bad : std::vector<std::vector<std::string>>{
             {"dkim", "keygen", "not a domain"},
             {"dkim", "keygen", "example.com", "--type", "dsa"},
             {"dkim", "keygen", "example.com", "--bits", "512"},
             {"dkim", "keygen", "example.com", "--selector", "../x", "--type", "rsa"},
             {"dkim", "keygen", "example.com", "--selector", "x"},
             {"dkim", "keygen"}}) {
        INFO(bad.back());
        CHECK(t.run(bad).code == 2);
    }
}

TEST_CASE(
    "dkim keygen: a domain directory that is a symlink is refused, nothing written through it",
    "[admin][dkim-cli]") {
    DkimCli t;
    // Whoever may write in key_dir (the milter's user, when it owns it) points a domain
    // elsewhere, hoping root writes a key file, owned by that user, where it points.
    TempDir elsewhere("postwarden-dkim-elsewhere");
    REQUIRE(mkdir((t.keys.path() + "/dkim").c_str(), 0755) == 0);
    REQUIRE(symlink(elsewhere.path().c_str(), (t.keys.path() + "/dkim/example.com").c_str()) == 0);
    auto r = t.run({"dkim", "keygen", "example.com", "--type", "ed25519", "--selector", "s1"});
    INFO(r.out << r.err);
    CHECK(r.code == 2);
    CHECK(contains(r.err, "not a directory"));
    struct stat st {};
    CHECK(lstat((elsewhere.path() + "/s1.key").c_str(), &st) != 0);
}

TEST_CASE("dkim activate, retire and list: the selector SET edited and shown",
          "[admin][dkim-cli]") {
    DkimCli t;
    REQUIRE(t.run({"dkim", "keygen", "example.com", "--type", "ed25519", "--selector", "a"}).code ==
            0);
    REQUIRE(t.run({"dkim", "keygen", "example.com", "--type", "ed25519", "--selector", "b"}).code ==
            0);
    auto r = t.run({"dkim", "activate", "example.com", "a"});
    INFO(r.out << r.err);
    CHECK(r.code == 0);
    CHECK(contains(r.out, "a activated for example.com"));
    CHECK(t.redis.run({"SMEMBERS", "pw:dkim:selectors:example.com"}).elements.size() == 1);
    // No key file, or one the milter would refuse: not activated.
    CHECK(t.run({"dkim", "activate", "example.com", "nokey"}).code == 2);
    REQUIRE(chmod(t.path("example.com", "b").c_str(), 0644) == 0);
    r = t.run({"dkim", "activate", "example.com", "b"});
    CHECK(r.code == 2);
    CHECK(contains(r.err, "open to group or others"));
    CHECK(t.redis.run({"SMEMBERS", "pw:dkim:selectors:example.com"}).elements.size() == 1);
    REQUIRE(chmod(t.path("example.com", "b").c_str(), 0600) == 0);
    CHECK(t.run({"dkim", "activate", "example.com", "b"}).code == 0);
    r = t.run({"--json", "dkim", "list"});
    CHECK(r.code == 0);
    CHECK(json_query(r.out,
                     "sorted([e['domain'], e['selector'], e['active'], e['key']] "
                     "for e in d)") ==
          "[[\"example.com\", \"a\", true, \"ok ed25519-sha256 256\"], "
          "[\"example.com\", \"b\", true, \"ok ed25519-sha256 256\"]]");
    CHECK(contains(t.run({"dkim", "list"}).out, "ok ed25519-sha256 256"));
    // Both active while a rotation overlaps; then a is retired and stays listed as inactive.
    r = t.run({"dkim", "retire", "example.com", "a"});
    CHECK(r.code == 0);
    CHECK(t.run({"dkim", "retire", "example.com", "a"}).code == 1);
    r = t.run({"--json", "dkim", "list", "example.com"});
    CHECK(json_query(r.out, "sorted([e['selector'], e['active']] for e in d)") ==
          "[[\"a\", false], [\"b\", true]]");
    CHECK(t.run({"dkim", "retire", "example.com", "../x"}).code == 2);
}

TEST_CASE("dkim list: every domain with active selectors, on every master of a cluster",
          "[admin][dkim-cli][cluster]") {
    DkimCli t;
    // Selectors of domains whose keys live on the milter's hosts, not here: only Redis knows
    // them, and on a cluster their SETs are spread over the masters.
    std::string expected;
    for (int i = 0; i < 12; ++i) {
        const auto domain = "d" + std::to_string(10 + i) + ".example";
        REQUIRE(t.redis.run({"SADD", "pw:dkim:selectors:" + domain, "s1"}).integer == 1);
        expected += std::string(expected.empty() ? "" : ", ") + "\"" + domain + "\"";
    }
    auto r = t.run({"--json", "dkim", "list"});
    INFO(r.out << r.err);
    CHECK(r.code == 0);
    CHECK(json_query(r.out, "sorted(set(e['domain'] for e in d))") == "[" + expected + "]");
}

TEST_CASE("dkim check: published keys compared with the key files", "[admin][dkim-cli]") {
    const auto other = dkim::generate_key(dkim::KeyType::ed25519, 0);
    // The keys are made first (below), so the zone is filled in afterwards from their files.
    DkimCli made;
    for (const auto& s : {"ok", "bad", "missing", "broken", "idle"})
        REQUIRE(made.run({"dkim", "keygen", "example.com", "--type", "ed25519", "--selector", s})
                    .code == 0);
    std::string why;
    auto ok_key = dkim::read_key_file(made.path("example.com", "ok"), key_owner(), &why);
    REQUIRE(ok_key);
    const std::string zone =
        "ok._domainkey.example.com TXT \"" + dkim::txt_record(*ok_key) + "\"\n" +
        "bad._domainkey.example.com TXT \"" + dkim::txt_record(other) + "\"\n" +
        "broken._domainkey.example.com TXT \"v=DKIM1; k=ed25519; p=not*base64\"\n";
    DnsServer dns(zone);
    Cli cli(made.redis, milter_user() + "[dkim]\nkey_dir = " + made.keys.path() +
                            "/dkim\n[dns]\nnameservers = " + dns.nameserver() +
                            "\ntimeout_ms = 500\n");
    for (const auto& s : {"ok", "bad", "missing", "broken"})
        REQUIRE(cli.run({"dkim", "activate", "example.com", s}).code == 0);
    auto r = cli.run({"dkim", "check", "example.com"});
    INFO(r.out << r.err);
    CHECK(r.code == 1);
    CHECK(contains(r.out, "mismatch (the published key is not this key file's)"));
    r = cli.run({"--json", "dkim", "check", "example.com"});
    CHECK(r.code == 1);
    CHECK(json_query(r.out,
                     "sorted([s['selector'], s['active'], s['dns'].split(' (')[0]] "
                     "for s in d['selectors'])") ==
          "[[\"bad\", true, \"mismatch\"], [\"broken\", true, \"malformed\"], "
          "[\"idle\", false, \"missing\"], [\"missing\", true, \"missing\"], "
          "[\"ok\", true, \"ok\"]]");
    CHECK(contains(r.out, "malformed (p= is not base64)"));
    // Only ok active: all is well (inactive keys only inform).
    for (const auto& s : {"bad", "missing", "broken"})
        REQUIRE(cli.run({"dkim", "retire", "example.com", s}).code == 0);
    r = cli.run({"--json", "dkim", "check", "example.com"});
    CHECK(r.code == 0);
    CHECK(json_query(r.out, "[s['dns'] for s in d['selectors'] if s['active']]") == "[\"ok\"]");
    // DNS that does not answer: temporary (3), not "missing".
    Cli silent(made.redis, milter_user() + "[dkim]\nkey_dir = " + made.keys.path() +
                               "/dkim\n[dns]\nnameservers = 127.0.0.1:" +
                               std::to_string(free_port()) + "\ntimeout_ms = 300\n");
    r = silent.run({"dkim", "check", "example.com"});
    CHECK(r.code == 3);
    CHECK(contains(r.out, "unknown (DNS"));
}
