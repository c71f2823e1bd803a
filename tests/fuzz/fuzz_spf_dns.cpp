// fuzz_spf_dns.cpp — SPF (common/dns/spf.hpp: libspf2 behind our DNS layer) with hostile records
// served from fuzzed DNS answers, no network. Every lookup the check makes, of any name, takes
// the next answer of the input, so the records, the include/redirect chains, MX and PTR names,
// addresses and exp= texts are all the attacker's; the limits of RFC 7208 §4.6.4 and our record
// rewriting must hold whatever comes back.
//
// Input: a first line "client-ip sender helo" (any part missing: a default), then the answers,
// separated by lines "--". An answer is a kind line, then its data:
//   R  the rest is a raw reply packet, decoded by dns::decode_reply as a real answer is;
//   N  no such name;  D  no record of that type;  E  temporary error;
//   anything else: the records of the asked type, one per line (A/AAAA: addresses; MX:
//   "preference host"; PTR: names; TXT: texts).
// Past the last answer, every lookup gets "no such name".
#include <arpa/inet.h>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "common/dns/spf.hpp"
#include "tests/fuzz/fuzz_input.hpp"

using namespace postwarden;

namespace {

std::vector<std::string_view> answers;  // this input's answer blocks
std::size_t next_answer = 0;

// Records of the asked type, as the resolver would decode them.
dns::Answer records(dns::Type type, const std::vector<std::string_view>& lines) {
    dns::Answer a;
    for (auto line : lines) {
        std::string text(line);
        unsigned char binary[16];
        char printed[INET6_ADDRSTRLEN];
        switch (type) {
            case dns::Type::a:
            case dns::Type::aaaa: {
                int family = type == dns::Type::a ? AF_INET : AF_INET6;
                if (inet_pton(family, text.c_str(), binary) == 1 &&
                    inet_ntop(family, binary, printed, sizeof printed))
                    a.addresses.emplace_back(printed);
                break;
            }
            case dns::Type::mx: {
                std::uint16_t preference = 0;
                auto space = line.find(' ');
                std::from_chars(line.data(), line.data() + line.size(), preference);
                a.mx.push_back(
                    {preference,
                     std::string(space == std::string_view::npos ? line : line.substr(space + 1))});
                break;
            }
            case dns::Type::ptr:
                a.names.push_back(text);
                break;
            case dns::Type::txt:
            case dns::Type::spf:
                a.texts.push_back(text);
                break;
        }
    }
    bool any = !a.addresses.empty() || !a.mx.empty() || !a.names.empty() || !a.texts.empty();
    a.status = any ? dns::Status::ok : dns::Status::nodata;
    return a;
}

dns::Answer serve(std::string_view, dns::Type type) {
    if (next_answer >= answers.size()) return fuzz::status_only(dns::Status::nxdomain);
    auto block = answers[next_answer++];
    auto newline = block.find('\n');
    auto kind = block.substr(0, newline);
    auto data = newline == std::string_view::npos ? std::string_view() : block.substr(newline + 1);
    if (kind == "R")
        return dns::decode_reply(std::vector<unsigned char>(data.begin(), data.end()), type);
    if (kind == "N") return fuzz::status_only(dns::Status::nxdomain);
    if (kind == "D") return fuzz::status_only(dns::Status::nodata);
    if (kind == "E") return fuzz::status_only(dns::Status::temp_error);
    return records(type, data.empty() ? std::vector<std::string_view>{} : fuzz::lines(data));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const spf::Checker checker{dns::Resolver(dns::AnswerSource(serve))};
    answers = fuzz::blocks(std::string_view(reinterpret_cast<const char*>(data), size));
    auto params = fuzz::split(answers.front(), " ");
    answers.erase(answers.begin());
    std::string ip(params.size() > 0 && !params[0].empty() ? params[0] : "192.0.2.1");
    std::string sender(params.size() > 1 ? params[1] : "user@example.com");
    std::string helo(params.size() > 2 ? params[2] : "mx.example.com");

    next_answer = 0;
    auto outcome = checker.check_mailfrom(ip, sender, helo);
    // RFC 7208 §4.6.4: at most 10 DNS-querying terms, plus the record lookups and the address
    // lookups of at most 10 MX or PTR names each; far fewer than this many answers are used.
    if (next_answer > 1 + 10 + 10 * 10 + 2) __builtin_trap();
    if (outcome.result != spf::Result::fail && !outcome.explanation.empty()) __builtin_trap();
    if (fuzz::verbose())
        std::fprintf(stderr, "spf=%s domain=%s answers=%zu exp=%s\n",
                     std::string(spf::to_string(outcome.result)).c_str(), outcome.domain.c_str(),
                     next_answer, outcome.explanation.c_str());
    next_answer = 0;
    (void)checker.check_helo(ip, helo);
    return 0;
}
