// support.cpp — keys, signing, zone and configuration for the milter tests; see support.hpp.
#include "tests/milter/support.hpp"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace postwarden::test {

namespace {

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

const std::string tool = POSTWARDEN_SOURCE_DIR "/tests/milter/dkim_tool.py";

}  // namespace

Keys::Keys() {
    std::string cmd = std::string(POSTWARDEN_PYTHON3) + " " + tool + " keygen " + dir.path();
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error("dkim_tool.py keygen failed");
    rsa_public = slurp(dir.path() + "/rsa.pub");
    rsa512_public = slurp(dir.path() + "/rsa512.pub");
    rsa768_public = slurp(dir.path() + "/rsa768.pub");
    ed25519_public = slurp(dir.path() + "/ed25519.pub");
}

const Keys& keys() {
    static Keys k;
    return k;
}

std::string sign(const std::vector<Header>& headers, const std::string& body,
                 const std::string& kind, const std::string& selector, const std::string& domain,
                 const std::string& canon, bool length) {
    const auto& k = keys();
    std::string in = k.dir.path() + "/message", out = k.dir.path() + "/signature";
    std::ofstream(in, std::ios::binary) << render(headers, body);
    std::string key = k.dir.path() + (kind == "ed25519"  ? "/ed25519.key"
                                      : kind == "rsa512" ? "/rsa512.pem"
                                      : kind == "rsa768" ? "/rsa768.pem"
                                                         : "/rsa.pem");
    const std::string algorithm = kind == "rsa-sha1" || kind == "ed25519" ? kind : "rsa";
    std::string cmd = std::string(POSTWARDEN_PYTHON3) + " " + tool + " sign " + key + " " +
                      algorithm + " " + selector + " " + domain + " " + canon +
                      (length ? " length" : "") + " < " + in + " > " + out;
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error("dkim_tool.py sign failed");
    auto field = slurp(out);
    auto colon = field.find(':');
    auto value = field.substr(colon + 2);
    while (!value.empty() && (value.back() == '\n' || value.back() == '\r'))
        value.pop_back();
    return value;
}

std::string zone() {
    const auto& k = keys();
    return "sender.test TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n"
           "_dmarc.sender.test TXT \"v=DMARC1; p=reject\"\n"
           "rsa._domainkey.sender.test TXT \"v=DKIM1; k=rsa; p=" +
           k.rsa_public +
           "\"\n"
           "ed._domainkey.sender.test TXT \"v=DKIM1; k=ed25519; p=" +
           k.ed25519_public +
           "\"\n"
           "broken._domainkey.sender.test TXT \"v=DKIM1; k=rsa; p=AAAAnotakey\"\n"
           "rsa512._domainkey.sender.test TXT \"v=DKIM1; k=rsa; p=" +
           k.rsa512_public +
           "\"\n"
           "rsa768._domainkey.sender.test TXT \"v=DKIM1; k=rsa; p=" +
           k.rsa768_public +
           "\"\n"
           "slow._domainkey.sender.test TIMEOUT\n"
           "quar.test TXT \"v=spf1 -all\"\n"
           "_dmarc.quar.test TXT \"v=DMARC1; p=quarantine\"\n"
           "none.test TXT \"v=spf1 -all\"\n"
           "_dmarc.none.test TXT \"v=DMARC1; p=none\"\n"
           "org.test TXT \"v=spf1 -all\"\n"
           "_dmarc.org.test TXT \"v=DMARC1; p=none; sp=reject\"\n"
           "sub.org.test TXT \"v=spf1 -all\"\n"
           "other.test TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n"
           "slowdmarc.test TXT \"v=spf1 -all\"\n"
           "_dmarc.slowdmarc.test TIMEOUT\n"
           "servfail.test TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n"
           "_dmarc.servfail.test SERVFAIL\n"
           "rsa._domainkey.servfail.test TXT \"v=DKIM1; k=rsa; p=" +
           k.rsa_public +
           "\"\n"
           "sub.sloworg.test TXT \"v=spf1 -all\"\n"
           "_dmarc.sloworg.test TIMEOUT\n";
}

std::string config(RedisServer& redis, DnsServer& dns, const std::string& extra) {
    return "authserv_id = mx.rcpt.example\n[redis]\naddress = " + redis.endpoint().to_string() +
           "\n[dns]\nnameservers = " + dns.nameserver() + "\ntimeout_ms = 400\n" + extra;
}

std::vector<Header> headers_from(const std::string& from) {
    return {{"From", from},
            {"To", "bob@rcpt.example"},
            {"Subject", "hello"},
            {"Date", "Mon, 1 Jan 2024 10:00:00 +0000"},
            {"Message-ID", "<1@sender.test>"}};
}

std::vector<std::string> auth_results(const std::vector<Header>& headers) {
    std::vector<std::string> out;
    for (const auto& [name, value] : headers)
        if (name == "Authentication-Results") out.push_back(value);
    return out;
}

}  // namespace postwarden::test
