// fuzz_headers.cpp — the header fields the milter reads and writes, on hostile text: From
// (RFC 5322 address lists, for DMARC and S8; every address read must read back the same from its
// RFC 5321 form), incoming Authentication-Results (whose authserv-id decides whether the milter
// removes them as forged), and the Authentication-Results header it writes from untrusted values
// (domains, selectors, reasons), which must stay one header field.
//
// Input: values separated by lines "--"; the first is our authserv-id, each other one is read
// as a From value and as an Authentication-Results value, and goes into our header as a domain,
// a selector and a reason.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/address.hpp"
#include "common/auth_results.hpp"
#include "common/mail/mail_header.hpp"
#include "milter/verdict.hpp"
#include "tests/fuzz/fuzz_input.hpp"

using namespace postwarden;

namespace {

// A header value we write: folded only as "\n\t", no other control characters, so nothing in it
// can start a header field of its own.
void check_one_field(std::string_view value) {
    for (std::size_t i = 0; i < value.size(); ++i) {
        auto c = static_cast<unsigned char>(value[i]);
        if (c == '\n' && (i + 1 == value.size() || value[i + 1] != '\t')) __builtin_trap();
        if ((c < ' ' && c != '\n' && c != '\t') || c == 0x7f) __builtin_trap();
    }
}

// Every address read has a lower-case host-name domain, and its address() (the form S8
// compares) reads back as the same local part and domain: quoting loses and adds nothing.
void check_addresses(std::string_view value) {
    auto read = read_address_list(value);
    auto list = parse_address_list(value);
    if (read.ok() != list.has_value() || (!read.ok() && !read.addresses.empty())) __builtin_trap();
    if (!list) return;
    if (list->size() > max_addresses) __builtin_trap();
    for (const auto& a : *list) {
        if (a.domain.empty() || a.domain.back() == '.') __builtin_trap();
        if (a.domain != to_lower(a.domain)) __builtin_trap();
        for (char c : a.domain)
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '@') __builtin_trap();
        for (char c : a.local)
            if (c == '\0' || c == '\r' || c == '\n') __builtin_trap();
        auto again = parse_address_list(a.address());
        if (!again || again->size() != 1 || (*again)[0].local != a.local ||
            (*again)[0].domain != a.domain)
            __builtin_trap();
    }
    auto from = milter::read_from({std::string(value)}, 1, false);
    if (from.kind == milter::FromFields::Kind::usable &&
        (from.domains.empty() || from.addresses.size() != list->size()))
        __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto values = fuzz::blocks(std::string_view(reinterpret_cast<const char*>(data), size));
    std::string ours(values.front());
    AuthResults r;
    r.authserv_id = header_value_token(ours);
    for (std::size_t i = 1; i < values.size(); ++i) {
        auto v = values[i];
        check_addresses(v);
        (void)authserv_id_of(v);
        (void)claims_authserv_id(v, ours);
        std::string s(v);
        r.dkim.push_back({"fail", s, s, "rsa-sha256", s});
        r.dmarc.push_back({"none", s, s});
        if (i == 1) r.spf_mailfrom = AuthResults::Spf{"pass", s};
    }
    auto written = format_auth_results(r);
    check_one_field(written);
    // Our own header claims our id, so the next hop's milter would remove a forged copy of it
    // (for every id the configuration accepts).
    if (authserv_id_problem(ours).empty() && !claims_authserv_id(written, ours)) __builtin_trap();
    return 0;
}
