// support.hpp — what the milter tests share: DKIM keys generated once per run by the independent
// signer (dkim_tool.py, python3-dkim), signing, the DNS zone and the configuration.
//
// Threading: test thread only.
#pragma once

#include <string>
#include <vector>

#include "tests/fixtures/dns_server.hpp"
#include "tests/fixtures/redis_server.hpp"
#include "tests/milter/milter_client.hpp"

namespace postwarden::test {

struct Keys {
    TempDir dir{"postwarden-dkim"};
    std::string rsa_public, ed25519_public;
    std::string rsa512_public, rsa768_public;  // too short to count (RFC 8301)
    Keys();
};
const Keys& keys();

// The DKIM-Signature value (after "DKIM-Signature: ") python3-dkim makes for this message.
// kind: "rsa" (2048 bits), "rsa-sha1" (the same key), "rsa512", "rsa768" (rsa-sha256 with short
// keys, selectors rsa512 and rsa768) or "ed25519"; canon like "relaxed/simple"; length: add l=.
std::string sign(const std::vector<Header>& headers, const std::string& body,
                 const std::string& kind, const std::string& selector, const std::string& domain,
                 const std::string& canon = "relaxed/simple", bool length = false);

// sender.test (SPF 192.0.2.0/24, p=reject, keys rsa, ed, rsa512 and rsa768._domainkey), quar.test
// (p=quarantine), none.test (p=none), org.test (p=none sp=reject), other.test (SPF only);
// DMARC lookups that fail: slowdmarc.test (times out), servfail.test (SERVFAIL; SPF
// 192.0.2.0/24, key rsa._domainkey), sub.sloworg.test (none there, its org domain times out).
std::string zone();

std::string config(RedisServer& redis, DnsServer& dns, const std::string& extra = "");

// A milter with a Redis and a DNS server of its own (zone()), configured by config() + extra.
struct MilterWorld {
    RedisServer redis;
    DnsServer dns{zone()};
    MilterProcess milter;
    explicit MilterWorld(const std::string& extra,
                         MilterProcess::Socket socket = MilterProcess::Socket::inet)
        : milter(config(redis, dns, extra), socket) {}
    Outcome run(const Transaction& t) { return MilterClient(milter).run(t); }
};

std::vector<Header> headers_from(const std::string& from);

// The Authentication-Results fields of a header list.
std::vector<std::string> auth_results(const std::vector<Header>& headers);

}  // namespace postwarden::test
