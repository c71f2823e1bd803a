// sign_test.cpp — outbound DKIM signing (SPEC §9, S14) through the milter protocol: the
// signatures postwarden-milter adds are verified by dkimpy (python3-dkim, dkim_tool.py verify)
// and by the milter's own inbound path (SPF, DKIM and DMARC pass when the signed message comes
// back as inbound mail), for RSA-2048, RSA-4096 and Ed25519, single and dual, with folded
// headers, 8-bit and long-line bodies; oversigning; the organizational-domain fallback; key files
// refused for their mode or owner and picked up again when fixed; messages left unsigned (no
// From, several From fields, no selector, no usable key) still delivered.
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/mail/dkim_key.hpp"
#include "common/mail/dkim_sign.hpp"
#include "tests/milter/support.hpp"

using namespace postwarden;
using namespace postwarden::test;

namespace {

// Made once per test program; RSA-4096 (a second or so) only by the test that uses it.
struct SignKeys {
    dkim::PrivateKey rsa2048 = dkim::generate_key(dkim::KeyType::rsa, 2048);
    dkim::PrivateKey ed = dkim::generate_key(dkim::KeyType::ed25519, 0);
};
const SignKeys& sign_keys() {
    static SignKeys k;
    return k;
}
// Kept in the build tree once made: a 4096-bit key takes seconds on a busy machine.
const dkim::PrivateKey& rsa4096() {
    static auto k = [] {
        const std::string path = POSTWARDEN_BINARY_DIR "/tests/dkim-test-rsa4096.pem";
        std::ifstream in(path);
        std::stringstream text;
        text << in.rdbuf();
        std::string why;
        if (auto key = dkim::parse_private_key(text.str(), &why); key && key->bits == 4096)
            return *key;
        auto key = dkim::generate_key(dkim::KeyType::rsa, 4096);
        std::ofstream(path) << key.pem;
        return key;
    }();
    return k;
}

// name → TXT of every key record the tests publish.
std::vector<std::pair<std::string, std::string>> records(bool big = false) {
    const auto& k = sign_keys();
    std::vector<std::pair<std::string, std::string>> r{
        {"pw-rsa._domainkey.sender.test", dkim::txt_record(k.rsa2048)},
        {"pw-ed._domainkey.sender.test", dkim::txt_record(k.ed)}};
    if (big) r.emplace_back("pw-big._domainkey.sender.test", dkim::txt_record(rsa4096()));
    return r;
}

std::string sign_zone(bool big) {
    std::string z = zone();
    for (const auto& [name, txt] : records(big)) {
        // The DNS server splits long TXT records into strings of at most 255 bytes.
        z += name + " TXT \"" + txt + "\"\n";
    }
    return z;
}

void write_key(const std::string& dir, const std::string& domain, const std::string& selector,
               const std::string& pem, mode_t mode = 0600) {
    mkdir((dir + "/" + domain).c_str(), 0700);
    const auto path = dkim::key_path(dir, domain, selector);
    unlink(path.c_str());
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, pem.data(), pem.size()) == static_cast<ssize_t>(pem.size()));
    REQUIRE(fchmod(fd, mode) == 0);
    close(fd);
}

struct SignWorld {
    TempDir keys{"postwarden-dkim-keys"};
    RedisServer redis;
    bool big;
    DnsServer dns{sign_zone(big)};
    MilterProcess milter;
    explicit SignWorld(bool with_rsa4096 = false)
        : big(with_rsa4096),
          // DNS timeout above the other tests' 400 ms: each message is verified twice here.
          milter("authserv_id = mx.rcpt.example\n[redis]\naddress = " +
                 redis.endpoint().to_string() + "\n[dns]\nnameservers = " + dns.nameserver() +
                 "\ntimeout_ms = 2000\n[greylist]\nenabled = no\n[dkim]\nkey_dir = " + keys.path() +
                 "\n") {
        const auto& k = sign_keys();
        write_key(keys.path(), "sender.test", "pw-rsa", k.rsa2048.pem);
        if (big) write_key(keys.path(), "sender.test", "pw-big", rsa4096().pem);
        write_key(keys.path(), "sender.test", "pw-ed", k.ed.pem);
    }
    void activate(const std::string& domain, const std::vector<std::string>& selectors) {
        std::vector<std::string> argv{"DEL", "pw:dkim:selectors:" + domain};
        redis.run(argv);
        if (selectors.empty()) return;
        argv = {"SADD", "pw:dkim:selectors:" + domain};
        argv.insert(argv.end(), selectors.begin(), selectors.end());
        redis.run(argv);
    }
    Outcome run(const Transaction& t) { return MilterClient(milter).run(t); }
};

// An authenticated submission from alice.
Transaction outbound(std::vector<Header> headers, std::string body,
                     const std::string& login = "alice@sender.test") {
    Transaction t;
    t.client_ip = "203.0.113.5";
    t.login = login;
    t.sender = login;
    t.headers = std::move(headers);
    t.body = std::move(body);
    return t;
}

std::vector<Header> alice_headers() {
    return {{"Received", "from client by mx (Postfix)"},
            {"From", "Alice <alice@sender.test>"},
            {"To", "bob@rcpt.example,\n\tcarol@rcpt.example"},  // folded, as Postfix hands it
            {"Subject",
             "=?UTF-8?Q?h=C3=A9llo?= and a subject long enough to be\n folded twice\n\tover"},
            {"Date", "Mon, 1 Jan 2024 10:00:00 +0000"},
            {"Message-ID", "<1@sender.test>"},
            {"X-Mailer", "not signed"}};
}

// A body with 8-bit text, a line of 5000 bytes, blanks to relax and trailing empty lines.
std::string hard_body() {
    std::string body =
        "Gr\xc3\xbc\xc3\x9f"
        "e, caf\xe9 \t  with  blanks \t\r\n\r\n";
    body += std::string(5000, 'x') + "\r\n";
    body += "end.  \r\n\r\n\r\n";
    return body;
}

// The message as it leaves: headers with CRLF folding.
std::string wire(const std::vector<Header>& headers, const std::string& body) {
    std::string out;
    for (const auto& [name, value] : headers) {
        out += name + ": ";
        for (std::size_t i = 0; i < value.size(); ++i) {
            if (value[i] == '\n' && (i == 0 || value[i - 1] != '\r')) out += '\r';
            out += value[i];
        }
        out += "\r\n";
    }
    return out + "\r\n" + body;
}

// dkimpy's verdict on each DKIM-Signature: "pass d=… s=… a=…".
std::vector<std::string> dkimpy(const std::vector<Header>& headers, const std::string& body,
                                bool big = false) {
    TempDir dir{"postwarden-dkimpy"};
    const std::string in = dir.path() + "/message", out = dir.path() + "/verdicts";
    std::ofstream(in, std::ios::binary) << wire(headers, body);
    std::string cmd = std::string(POSTWARDEN_PYTHON3) + " " POSTWARDEN_SOURCE_DIR
                                                        "/tests/milter/dkim_tool.py verify";
    for (const auto& [name, txt] : records(big))
        cmd += " '" + name + "=" + txt + "'";
    cmd += " < " + in + " > " + out;
    REQUIRE(std::system(cmd.c_str()) == 0);
    std::ifstream verdicts(out);
    std::vector<std::string> lines;
    for (std::string line; std::getline(verdicts, line);)
        lines.push_back(line);
    return lines;
}

std::vector<std::string> signatures(const std::vector<Header>& headers) {
    std::vector<std::string> out;
    for (const auto& [name, value] : headers)
        if (name == "DKIM-Signature") out.push_back(value);
    return out;
}

// The signed message fed back to the milter as inbound mail from sender.test's SPF network.
std::string inbound_results(SignWorld& w, const std::vector<Header>& headers,
                            const std::string& body) {
    Transaction t;
    t.client_ip = "192.0.2.10";
    t.sender = "alice@sender.test";
    t.headers = headers;
    t.body = body;
    auto out = w.run(t);
    INFO(w.milter.log());
    CHECK(out.accepted());
    return out.added("Authentication-Results");
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

// The h= tag of a DKIM-Signature value, blanks removed.
std::string h_tag(const std::string& value) {
    std::string compact;
    for (char c : value)
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n') compact += c;
    auto at = compact.find(";h=");
    REQUIRE(at != std::string::npos);
    auto end = compact.find(';', at + 1);
    return compact.substr(at + 3, end - at - 3);
}

}  // namespace

TEST_CASE("DKIM signing: RSA-2048 and Ed25519 both sign, dkimpy and our inbound path verify",
          "[milter][dkim-sign]") {
    SignWorld w;
    w.activate("sender.test", {"pw-rsa", "pw-ed"});
    const auto body = hard_body();
    auto t = outbound(alice_headers(), body);
    auto out = w.run(t);
    INFO(w.milter.log());
    REQUIRE(out.accepted());
    auto headers = apply_modifications(t.headers, out.modifications);
    auto sigs = signatures(headers);
    REQUIRE(sigs.size() == 2);
    auto verdicts = dkimpy(headers, body);
    REQUIRE(verdicts.size() == 2);
    std::sort(verdicts.begin(), verdicts.end());
    CHECK(verdicts[0] == "pass d=sender.test s=pw-ed a=ed25519-sha256");
    CHECK(verdicts[1] == "pass d=sender.test s=pw-rsa a=rsa-sha256");
    for (const auto& s : sigs) {
        CHECK(contains(s, "c=relaxed/relaxed"));
        // Every signed field, then each oversign name once more (RFC 6376 §8.15).
        CHECK(h_tag(s) == "From:To:Subject:Date:Message-ID:from:to:cc:subject:date:reply-to");
    }
    auto ar = inbound_results(w, headers, body);
    CHECK(contains(ar, "dkim=pass header.d=sender.test header.s=pw-rsa"));
    CHECK(contains(ar, "dkim=pass header.d=sender.test header.s=pw-ed"));
    CHECK(contains(ar, "dmarc=pass"));
    CHECK(contains(w.milter.log(), "dkim=signed d=sender.test s=pw-ed,pw-rsa"));
    // A clean exit: under AddressSanitizer, nothing the signatures allocated is left behind.
    w.milter.process().stop();
    CHECK(WIFEXITED(w.milter.process().status()));
    CHECK(WEXITSTATUS(w.milter.process().status()) == 0);
}

TEST_CASE("DKIM signing: a reply, a colon and a blank inside the Subject, verifies",
          "[milter][dkim-sign]") {
    SignWorld w;
    w.activate("sender.test", {"pw-ed"});
    auto headers = alice_headers();
    for (auto& [name, value] : headers)
        if (name == "Subject") value = "Re: Fwd:  lunch at 12:30";
    auto t = outbound(headers, "see you\r\n");
    auto out = w.run(t);
    INFO(w.milter.log());
    REQUIRE(out.accepted());
    auto signed_headers = apply_modifications(t.headers, out.modifications);
    REQUIRE(signatures(signed_headers).size() == 1);
    auto verdicts = dkimpy(signed_headers, "see you\r\n");
    REQUIRE(verdicts.size() == 1);
    CHECK(verdicts[0] == "pass d=sender.test s=pw-ed a=ed25519-sha256");
}

TEST_CASE("DKIM signing: RSA-4096 and Ed25519 alone verify", "[milter][dkim-sign]") {
    SignWorld w(true);
    for (const auto& [selector, algorithm] : std::vector<std::pair<std::string, std::string>>{
             {"pw-big", "rsa-sha256"}, {"pw-ed", "ed25519-sha256"}}) {
        w.activate("sender.test", {selector});
        const std::string body = "one line, no line end";
        auto t = outbound(alice_headers(), body);
        auto out = w.run(t);
        INFO(selector << "\n" << w.milter.log());
        REQUIRE(out.accepted());
        auto headers = apply_modifications(t.headers, out.modifications);
        REQUIRE(signatures(headers).size() == 1);
        CHECK(dkimpy(headers, body, true) ==
              std::vector<std::string>{"pass d=sender.test s=" + selector + " a=" + algorithm});
        auto ar = inbound_results(w, headers, body);
        CHECK(contains(ar, "dkim=pass header.d=sender.test header.s=" + selector));
    }
}

TEST_CASE("DKIM signing: an oversigned field added in transit breaks the signature",
          "[milter][dkim-sign]") {
    SignWorld w;
    w.activate("sender.test", {"pw-ed"});
    auto t = outbound(alice_headers(), "Hi.\r\n");
    auto out = w.run(t);
    REQUIRE(out.accepted());
    auto headers = apply_modifications(t.headers, out.modifications);
    REQUIRE(dkimpy(headers, t.body) ==
            std::vector<std::string>{"pass d=sender.test s=pw-ed a=ed25519-sha256"});
    for (const auto& added : std::vector<Header>{{"Subject", "Second subject"},
                                                 {"Cc", "eve@evil.example"},
                                                 {"Reply-To", "eve@evil.example"}}) {
        auto tampered = headers;
        tampered.push_back(added);
        INFO(added.first);
        CHECK(dkimpy(tampered, t.body) ==
              std::vector<std::string>{"fail d=sender.test s=pw-ed a=ed25519-sha256"});
    }
    // A field that is not signed may be added: the signature still holds.
    auto extra = headers;
    extra.push_back({"X-Spam-Score", "0"});
    CHECK(dkimpy(extra, t.body) ==
          std::vector<std::string>{"pass d=sender.test s=pw-ed a=ed25519-sha256"});
}

TEST_CASE("DKIM signing: a subdomain without selectors signs with its organizational domain",
          "[milter][dkim-sign]") {
    SignWorld w;
    w.activate("sender.test", {"pw-rsa"});
    std::vector<Header> headers{{"From", "alice@sub.sender.test"}, {"Subject", "hi"}};
    auto t = outbound(headers, "Hi.\r\n", "alice@sub.sender.test");
    auto out = w.run(t);
    INFO(w.milter.log());
    REQUIRE(out.accepted());
    auto signed_headers = apply_modifications(t.headers, out.modifications);
    CHECK(dkimpy(signed_headers, t.body) ==
          std::vector<std::string>{"pass d=sender.test s=pw-rsa a=rsa-sha256"});
    // Selectors of the subdomain itself win over the organizational domain's.
    w.activate("sub.sender.test", {"nokey"});
    out = w.run(t);
    CHECK(out.accepted());
    CHECK(signatures(apply_modifications(t.headers, out.modifications)).empty());
    CHECK(contains(w.milter.log(), "dkim: selector nokey: no key file"));
}

TEST_CASE("DKIM signing: mail without a usable From or key goes out unsigned",
          "[milter][dkim-sign]") {
    SignWorld w;
    w.activate("sender.test", {"pw-ed"});
    struct Case {
        std::string what;
        std::vector<Header> headers;
        std::string reason;
    };
    // From trusted_networks (no login, so S8 does not refuse the odd From fields).
    for (const auto& c : std::vector<Case>{
             {"no From", {{"Subject", "x"}}, "dkim_reason=no-from"},
             {"two From fields",
              {{"From", "a@sender.test"}, {"From", "b@sender.test"}},
              "dkim_reason=malformed-from"},
             {"two From domains",
              {{"From", "a@sender.test, b@other.test"}},
              "dkim_reason=several-from-domains"},
             {"a domain without keys", {{"From", "a@other.test"}}, "dkim_reason=no-key-directory"},
         }) {
        Transaction t;
        t.client_ip = "127.0.0.1";
        t.sender = "a@sender.test";
        t.headers = c.headers;
        auto out = w.run(t);
        INFO(c.what << "\n" << w.milter.log());
        CHECK(out.accepted());
        CHECK(signatures(apply_modifications(t.headers, out.modifications)).empty());
        CHECK(contains(w.milter.log(), c.reason));
    }
    // Retired: the next message is not signed.
    w.activate("sender.test", {});
    auto t = outbound(alice_headers(), "Hi.\r\n");
    auto out = w.run(t);
    CHECK(out.accepted());
    CHECK(signatures(apply_modifications(t.headers, out.modifications)).empty());
    CHECK(contains(w.milter.log(), "dkim_reason=no-active-selector"));
}

TEST_CASE("DKIM signing: a key file others can read is refused until it is fixed",
          "[milter][dkim-sign]") {
    SignWorld w;
    w.activate("sender.test", {"pw-rsa", "pw-ed"});
    const auto rsa_path = dkim::key_path(w.keys.path(), "sender.test", "pw-rsa");
    REQUIRE(chmod(rsa_path.c_str(), 0640) == 0);
    auto t = outbound(alice_headers(), "Hi.\r\n");
    auto out = w.run(t);
    INFO(w.milter.log());
    REQUIRE(out.accepted());
    auto headers = apply_modifications(t.headers, out.modifications);
    CHECK(dkimpy(headers, t.body) ==
          std::vector<std::string>{"pass d=sender.test s=pw-ed a=ed25519-sha256"});
    CHECK(contains(w.milter.log(), "is open to group or others (mode 0640)"));
    // Fixed: the changed file is read again for the next message.
    REQUIRE(chmod(rsa_path.c_str(), 0600) == 0);
    out = w.run(t);
    CHECK(signatures(apply_modifications(t.headers, out.modifications)).size() == 2);
    if (geteuid() == 0) {
        // Owned by another user than the milter's (root here): refused too.
        const passwd* nobody = getpwnam("nobody");
        REQUIRE(nobody);
        REQUIRE(chown(rsa_path.c_str(), nobody->pw_uid, nobody->pw_gid) == 0);
        out = w.run(t);
        CHECK(signatures(apply_modifications(t.headers, out.modifications)).size() == 1);
        CHECK(contains(w.milter.log(), "is owned by uid " + std::to_string(nobody->pw_uid)));
    }
    // Not a key at all: refused, the mail still goes (unsigned when nothing is left).
    write_key(w.keys.path(), "sender.test", "pw-ed", "not a key\n");
    w.activate("sender.test", {"pw-ed"});
    out = w.run(t);
    CHECK(out.accepted());
    CHECK(signatures(apply_modifications(t.headers, out.modifications)).empty());
    CHECK(contains(w.milter.log(), "not a PEM private key"));
    CHECK(contains(w.milter.log(), "dkim_reason=no-usable-key"));
}

TEST_CASE("DKIM signing: Redis down defers outbound mail rather than send it unsigned",
          "[milter][dkim-sign]") {
    SignWorld w;
    w.redis.stop();
    Transaction t;
    t.client_ip = "127.0.0.1";
    t.sender = "a@sender.test";
    t.headers = {{"From", "a@sender.test"}};
    auto out = w.run(t);
    INFO(w.milter.log());
    CHECK(out.reply == 'y');
    CHECK(out.text.rfind("451 4.3.0", 0) == 0);
}

TEST_CASE("DKIM signing: selectors come from memory, and an edit counts for the next message",
          "[milter][dkim-sign]") {
    SignWorld w;
    w.activate("sender.test", {"pw-rsa"});
    auto calls = [&](const std::string& command) {
        auto field = w.redis.info_field("commandstats", "cmdstat_" + command);
        auto at = field.find("calls=");
        return at == std::string::npos ? 0L : std::stol(field.substr(at + 6));
    };
    auto signed_by = [&]() {
        auto t = outbound(alice_headers(), "Hi.\r\n");
        auto out = w.run(t);
        REQUIRE(out.accepted());
        std::vector<std::string> selectors;
        for (const auto& s : signatures(apply_modifications(t.headers, out.modifications)))
            selectors.push_back(
                s.substr(s.find("s=") + 2, s.find(';', s.find("s=")) - s.find("s=") - 2));
        return selectors;
    };
    // Tracking is set up shortly after the milter connects.
    REQUIRE(signed_by() == std::vector<std::string>{"pw-rsa"});
    for (int i = 0; i < 50 && calls("sscan") == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        REQUIRE(signed_by() == std::vector<std::string>{"pw-rsa"});
    }
    const long loads = calls("sscan"), asked = calls("smembers");
    REQUIRE(loads > 0);
    for (int i = 0; i < 3; ++i)
        CHECK(signed_by() == std::vector<std::string>{"pw-rsa"});
    CHECK(calls("sscan") == loads);  // answered from memory
    CHECK(calls("smembers") == asked);
    // Activated on the side (as redis-cli would): the very next message carries both.
    w.redis.run({"SADD", "pw:dkim:selectors:sender.test", "pw-ed"});
    auto both = signed_by();
    std::sort(both.begin(), both.end());
    CHECK(both == std::vector<std::string>{"pw-ed", "pw-rsa"});
    w.redis.run({"SREM", "pw:dkim:selectors:sender.test", "pw-rsa"});
    CHECK(signed_by() == std::vector<std::string>{"pw-ed"});
}

TEST_CASE("DKIM signing: a large message is signed as it streams, never held whole",
          "[milter][dkim-sign]") {
    // Under AddressSanitizer freed memory waits in a quarantine, which would count here as held:
    // the milter started below gets none (its other checks stay on).
    const char* asan = std::getenv("ASAN_OPTIONS");
    const std::string saved = asan ? asan : "";
    setenv("ASAN_OPTIONS", (saved + (saved.empty() ? "" : ":") + "quarantine_size_mb=0").c_str(),
           1);
    SignWorld w;
    if (asan)
        setenv("ASAN_OPTIONS", saved.c_str(), 1);
    else
        unsetenv("ASAN_OPTIONS");
    w.activate("sender.test", {"pw-rsa", "pw-ed"});
    auto peak_kb = [&] {
        std::ifstream status("/proc/" + std::to_string(w.milter.process().pid()) + "/status");
        for (std::string line; std::getline(status, line);)
            if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
        return 0L;
    };
    auto warm = outbound(alice_headers(), "Hi.\r\n");
    REQUIRE(w.run(warm).accepted());
    const long before = peak_kb();
    std::string line(998, 'y');  // RFC 5322's longest line
    std::string body;
    for (int i = 0; i < 12 * 1024; ++i)  // 12 MB
        body += line + "\r\n";
    auto t = outbound(alice_headers(), body);
    auto out = w.run(t);
    INFO(w.milter.log());
    REQUIRE(out.accepted());
    const long grown = peak_kb() - before;
    INFO("peak memory grew by " << grown << " kB");
    CHECK(grown < 4 * 1024);  // a fraction of the message: chunks, not the whole
    auto headers = apply_modifications(t.headers, out.modifications);
    REQUIRE(signatures(headers).size() == 2);
    auto ar = inbound_results(w, headers, body);
    CHECK(contains(ar, "dkim=pass header.d=sender.test header.s=pw-rsa"));
    CHECK(contains(ar, "dkim=pass header.d=sender.test header.s=pw-ed"));
}
