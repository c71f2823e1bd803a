// dkim_differential_test.cpp — the milter's DKIM verifier (common/mail/dkim.hpp) against an
// independent one, dkimpy, on a generated corpus (dkim_corpus.py: 200+ messages, every key type,
// canonicalization, folded and oversized fields, l=, several signatures, changes after signing),
// with the keys served by the loopback DNS server. The verdicts must agree signature by
// signature, except where we are stricter on purpose, each difference with its reason:
//   - rsa-sha1 (RFC 8301 §3.1: verifiers must not consider it valid; dkimpy still passes it);
//   - l= with text after the signed length (RFC 6376 §8.2: the appended text is not covered by
//     the signature, so it vouches for nothing we could show; dkimpy honours l=).
// RSA keys under 1024 bits need no exception: dkimpy refuses them too (minkey=1024).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "common/mail/dkim.hpp"
#include "tests/fixtures/dns_server.hpp"
#include "tests/fixtures/process.hpp"

using namespace postwarden;
using namespace postwarden::test;

namespace {

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// The message as the milter sees it: header fields "Name:value" with their folding, the body.
std::vector<dkim::Signature> verify(const dkim::Library& library, const std::string& message) {
    dkim::Verifier v(library, "corpus");
    std::size_t at = 0;
    while (at < message.size() && message.compare(at, 2, "\r\n") != 0) {
        auto end = message.find("\r\n", at);
        while (end != std::string::npos && end + 2 < message.size() &&
               (message[end + 2] == ' ' || message[end + 2] == '\t'))
            end = message.find("\r\n", end + 2);  // a folded line belongs to the field
        if (end == std::string::npos) end = message.size();
        v.header(std::string_view(message).substr(at, end - at));
        at = std::min(end + 2, message.size());
    }
    v.end_of_headers();
    if (at + 2 <= message.size()) v.body(std::string_view(message).substr(at + 2));
    return v.finish();
}

struct Expected {
    std::string message, domain, selector;
    bool pass;
    std::string what;
};

std::vector<Expected> read_verdicts(const std::string& path) {
    std::vector<Expected> out;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        std::vector<std::string> f;
        std::stringstream s(line);
        for (std::string part; std::getline(s, part, '\t');)
            f.push_back(part);
        if (f.size() == 5) out.push_back({f[0], f[1], f[2], f[3] == "pass", f[4]});
    }
    return out;
}

// Why our verdict may differ from dkimpy's pass, or "" when it may not.
std::string stricter_on_purpose(const dkim::Signature& ours) {
    if (ours.result != dkim::Result::policy) return "";
    if (ours.algorithm == "rsa-sha1") return "rsa-sha1 (RFC 8301)";
    if (ours.reason.find("l=") != std::string::npos) return "text after l= (RFC 6376 8.2)";
    return "";
}

}  // namespace

TEST_CASE("DKIM against dkimpy: verdicts agree on a generated corpus", "[milter][dkim]") {
    TempDir dir("postwarden-dkim-corpus");
    std::string cmd = std::string(POSTWARDEN_PYTHON3) +
                      " " POSTWARDEN_SOURCE_DIR "/tests/milter/dkim_corpus.py " + dir.path() +
                      " > /dev/null";
    REQUIRE(std::system(cmd.c_str()) == 0);
    DnsServer dns(slurp(dir.path() + "/zone"));
    dkim::Library library(dns.resolver_options());
    auto expected = read_verdicts(dir.path() + "/verdicts");
    REQUIRE(expected.size() >= 200);

    std::map<std::string, std::vector<dkim::Signature>> verdicts;  // per message
    std::map<std::string, int> differences;                        // reason → count
    int agreed_pass = 0, agreed_fail = 0;
    for (const auto& e : expected) {
        auto [it, fresh] = verdicts.try_emplace(e.message);
        if (fresh) it->second = verify(library, slurp(dir.path() + "/" + e.message + ".eml"));
        const dkim::Signature* ours = nullptr;
        for (const auto& s : it->second)
            if (s.domain == e.domain && s.selector == e.selector) ours = &s;
        INFO(e.message << ".eml s=" << e.selector << ": " << e.what << "; dkimpy "
                       << (e.pass ? "pass" : "fail") << ", ours "
                       << (ours ? std::string(dkim::to_string(ours->result)) + " (" + ours->reason +
                                      ")"
                                : std::string("missing")));
        REQUIRE(ours);
        const bool pass = ours->result == dkim::Result::pass;
        if (pass == e.pass) {
            ++(pass ? agreed_pass : agreed_fail);
            continue;
        }
        auto reason = e.pass ? stricter_on_purpose(*ours) : "";
        CHECK_FALSE(reason.empty());
        if (!reason.empty()) ++differences[reason];
    }
    // The corpus exercises both answers and both exceptions.
    CHECK(agreed_pass >= 80);
    CHECK(agreed_fail >= 80);
    CHECK(differences["rsa-sha1 (RFC 8301)"] > 0);
    CHECK(differences["text after l= (RFC 6376 8.2)"] == 8);
    CHECK(differences.size() == 2);
}
