// idna.cpp — domain names to A-labels with libidn2; see idna.hpp.
#include "common/idna.hpp"

#include <idn2.h>

#include <cstdlib>
#include <memory>

namespace postwarden {

namespace {

struct FreeDeleter {
    void operator()(char* p) const { std::free(p); }
};

char lower(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// Every label non-empty and at most 63 octets, the whole at most 253 (without a final dot):
// what a DNS name can hold. libidn2 leaves empty labels alone and allows 255.
bool fits_dns(std::string_view name) {
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    if (name.empty() || name.size() > 253) return false;
    std::size_t label = 0;
    for (char c : name) {
        if (c != '.') {
            if (++label > 63) return false;
            continue;
        }
        if (label == 0) return false;
        label = 0;
    }
    return label > 0;
}

}  // namespace

std::optional<std::string> to_a_label(std::string_view domain) {
    if (is_ascii(domain)) {
        std::string out(domain);
        for (char& c : out)
            c = lower(c);
        return out;
    }
    // libidn2 reads a C string: a NUL inside would cut the name short unseen.
    if (domain.find('\0') != std::string_view::npos) return std::nullopt;
    std::string input(domain);
    char* raw = nullptr;
    int rc =
        idn2_lookup_u8(reinterpret_cast<const uint8_t*>(input.c_str()),
                       reinterpret_cast<uint8_t**>(&raw), IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
    std::unique_ptr<char, FreeDeleter> converted(raw);
    if (rc != IDN2_OK || !converted) return std::nullopt;
    std::string out(converted.get());
    for (char& c : out)
        c = lower(c);
    if (!fits_dns(out)) return std::nullopt;
    return out;
}

}  // namespace postwarden
