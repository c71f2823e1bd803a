// fuzz_dkim.cpp — DKIM verification as the milter drives it (common/mail/dkim.hpp), on hostile
// messages: header fields handed over one by one the way Postfix gives them to the milter
// (bare LF folding, "Name:value"), then the body in pieces, then the verdicts. libopendkim parses
// the DKIM-Signature tags; its key lookups are answered here, with no network, by DNS reply
// packets that go through our own packet decoder, as real answers do.
//
// Input: an optional first line "K:<TXT>" that is served as every key record; then the message.
// Without it, selector "rsa" gets an RSA key, "nx" no such name, "tmp" a temporary error, any
// other an ed25519 key (the seeds are signed with those keys by python3-dkim).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "common/mail/dkim.hpp"
#include "tests/fuzz/fuzz_input.hpp"

using namespace postwarden;
namespace pwdkim = postwarden::dkim;

namespace {

constexpr std::string_view ed25519_key =
    "v=DKIM1; k=ed25519; p=rFiGXdawaVRpuDRBr0tJHVP2LnaptHJfOgQCOFpYYVA=";
constexpr std::string_view rsa_key =
    "v=DKIM1; k=rsa; "
    "p="
    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDpqm4PN1zAaG7dU4Gv8JLQMc7JDa9oVGsSkYBANqAa2IYJg6phyDiehf"
    "/QYaeXQtTtR1W6u+"
    "BKcq8b5zOq5Vy8GfSfI2MRQyGmgoMFErcYTgMlSHgnq0e5qmG6LvcWcHLUF8kkBtIvRgBJRSdHfYOk+"
    "iEQyDSx3N6zJpZEgh7g2wIDAQAB";

std::string served_key;  // this input's "K:" record, or empty

dns::Answer serve(std::string_view name, dns::Type type) {
    if (name.starts_with("tmp.")) return fuzz::status_only(dns::Status::temp_error);
    int rcode = name.starts_with("nx.") ? 3 : 0;
    std::string_view record = !served_key.empty()        ? served_key
                              : name.starts_with("rsa.") ? rsa_key
                                                         : ed25519_key;
    std::vector<std::string> rdatas;
    if (rcode == 0) rdatas.push_back(fuzz::txt_rdata(record));
    return dns::decode_reply(
        fuzz::reply_packet(name, static_cast<std::uint16_t>(type), rcode, rdatas), type);
}

std::string_view without_cr(std::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const pwdkim::Library library{dns::Resolver(dns::AnswerSource(serve))};
    std::string_view input(reinterpret_cast<const char*>(data), size);
    served_key.clear();
    if (input.starts_with("K:")) {
        auto end = input.find('\n');
        served_key = std::string(input.substr(2, end == std::string_view::npos ? end : end - 2));
        input.remove_prefix(end == std::string_view::npos ? input.size() : end + 1);
    }

    pwdkim::Verifier verifier(library, "fuzz");
    std::string field;  // the header field being unfolded, "Name:value\n\tmore"
    std::size_t pos = 0;
    while (pos < input.size()) {
        auto end = input.find('\n', pos);
        auto line = without_cr(input.substr(pos, end == std::string_view::npos ? end : end - pos));
        pos = end == std::string_view::npos ? input.size() : end + 1;
        if (!line.empty() && (line[0] == ' ' || line[0] == '\t') && !field.empty()) {
            field += "\n";
            field += line;
            continue;
        }
        if (!field.empty()) verifier.header(field);
        field.clear();
        if (line.empty()) break;  // end of the header
        field = line;
    }
    if (!field.empty()) verifier.header(field);
    verifier.end_of_headers();
    // The body in pieces whose size depends on the input, as the MTA's chunks do.
    std::size_t step = size ? data[size - 1] % 61 + 1 : 1;
    while (pos < input.size()) {
        verifier.body(input.substr(pos, step));
        pos += step;
    }
    auto verdicts = verifier.finish();
    if (verdicts.size() > 8) __builtin_trap();  // dkim::Limits::max_signatures
    for (const auto& s : verdicts) {
        if (fuzz::verbose())
            std::fprintf(stderr, "dkim=%s d=%s s=%s a=%s (%s)\n",
                         std::string(pwdkim::to_string(s.result)).c_str(), s.domain.c_str(),
                         s.selector.c_str(), s.algorithm.c_str(), s.reason.c_str());
        if (s.result == pwdkim::Result::pass && s.domain.empty()) __builtin_trap();
    }
    return 0;
}
