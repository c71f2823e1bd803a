// fuzz_dkim_sign.cpp — DKIM signing and published key records on hostile input: the key record
// `postwarden dkim check` reads from DNS, header selection, and the signer canonicalizing and
// signing header fields and a body the milter was handed (NULs, fields without a colon, bare CR
// and LF, 8-bit bytes).
//
// Input: the first line is a key record; the second a selector and a domain, space separated;
// then header fields, one per line ("\t" at the start of a line folds it into the field before),
// up to an empty line; the rest is the body. The key is made once, Ed25519 (RSA costs more and
// takes the same canonicalization path).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "common/mail/dkim_key.hpp"
#include "common/mail/dkim_sign.hpp"
#include "tests/fuzz/fuzz_input.hpp"

using namespace postwarden;

namespace {

void check_record(std::string_view text) {
    auto r = dkim::parse_key_record(text);
    if (r.problem.empty() && r.p.empty()) __builtin_trap();  // a revoked key is a problem
    if (r.problem.empty() && r.k != "rsa" && r.k != "ed25519") __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const auto key =
        std::make_shared<const dkim::PrivateKey>(dkim::generate_key(dkim::KeyType::ed25519, 0));
    static const auto library = std::make_shared<const dkim::SigningLibrary>(
        dkim::HeaderSelection{{"from", "to", "subject", "date", "x-a"}, {"from", "subject"}});
    std::string_view input(reinterpret_cast<const char*>(data), size);
    auto all = fuzz::lines(input);
    check_record(all.front());
    std::string selector = "s", domain = "example.com";
    if (all.size() > 1) {
        auto words = fuzz::split(all[1], " ");
        if (dkim::valid_selector(words[0])) selector = std::string(words[0]);
        if (words.size() > 1 && dkim::valid_key_domain(words[1])) domain = std::string(words[1]);
        if (dkim::valid_selector(words[0]) &&
            dkim::key_path("/k", domain, selector).find("..") != std::string::npos)
            __builtin_trap();  // a valid name never leaves the key directory
    }
    std::vector<std::string> fields, names;
    std::size_t line = 2, consumed = all[0].size() + 1 + (all.size() > 1 ? all[1].size() + 1 : 0);
    for (; line < all.size() && !all[line].empty(); ++line) {
        consumed += all[line].size() + 1;
        if (all[line][0] == '\t' && !fields.empty()) {
            fields.back() += "\n" + std::string(all[line]);
            continue;
        }
        std::string field(all[line]);
        if (library->selection().signs(dkim::field_name_of(field))) fields.push_back(field);
    }
    for (const auto& f : fields)
        names.emplace_back(dkim::field_name_of(f));
    const auto h = dkim::signed_header_list(names, library->selection());
    if (h.size() != names.size() + library->selection().oversign.size()) __builtin_trap();
    dkim::Signer signer(library, {{domain, selector, key}}, fields, "fuzz");
    if (consumed + 1 < input.size()) {
        auto body = input.substr(consumed + 1);
        signer.body(body.substr(0, body.size() / 2));
        signer.body(body.substr(body.size() / 2));
    }
    std::vector<std::string> problems;
    auto signatures = signer.finish(&problems);
    if (signatures.size() + problems.size() != 1) __builtin_trap();  // one key: one outcome
    if (fuzz::verbose())
        std::fprintf(
            stderr, "h=%zu fields, %s\n", h.size(),
            signatures.empty() ? problems.front().c_str() : signatures.front().value.c_str());
    for (const auto& s : signatures)
        if (s.value.find('\r') != std::string::npos || s.value.find("b=") == std::string::npos)
            __builtin_trap();
    return 0;
}
