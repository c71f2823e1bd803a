// idna.hpp — internationalized domain names in the one form postwarden compares and looks up:
// A-labels (IDNA2008, RFC 5891), lower-cased. "BÜCHER.example", "bücher。example" and
// "xn--bcher-kva.example" are one domain; DNS, the operator's lists and DMARC alignment must see
// it as one name, or a policy published (or a block entry stored) under one spelling is missed
// by mail that uses another.
//
// Entry points: is_ascii(), to_a_label().
// Pure (libidn2 keeps no state), thread-safe. The input is untrusted: any bytes in, a value out.
// Pure-ASCII names never reach libidn2: the daemons' hot paths see mostly those, and pay one
// scan for a byte >= 0x80.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace postwarden {

// No byte >= 0x80: nothing to convert. Inline and eight bytes a step: the daemons ask it of
// every name on their hot paths (list lookups, greylist keys, SPF, the DNS cache).
inline bool is_ascii(std::string_view text) {
    const char* p = text.data();
    const std::size_t size = text.size();
    std::uint64_t seen = 0;
    if (size >= 8) {
        std::uint64_t word;
        for (std::size_t i = 0; i + 8 <= size; i += 8) {
            std::memcpy(&word, p + i, 8);
            seen |= word;
        }
        std::memcpy(&word, p + size - 8, 8);  // the rest, overlapping what was read
        seen |= word;
    } else {
        std::uint32_t half = 0;
        std::uint16_t quarter = 0;
        if (size & 4) std::memcpy(&half, p, 4);
        if (size & 2) std::memcpy(&quarter, p + (size & 4), 2);
        seen = half | quarter;
        if (size & 1) seen |= static_cast<unsigned char>(p[size - 1]);
    }
    return (seen & 0x8080808080808080ULL) == 0;
}

// The A-label spelling of a domain name, lower-cased, a trailing dot kept.
// - An ASCII name is only lower-cased: it is already what goes on the wire, and its syntax is
//   the caller's business. An "xn--" label in it is not checked either: names registered under
//   IDNA2003 (xn--ls8h.la) exist in DNS, and must stay reachable and listable.
// - Any other name is mapped per UTS #46, non-transitional (upper case folded, full-width
//   letters and the ideographic full stop U+3002 read as what they stand for, "ß" kept), and
//   converted per IDNA2008.
//   Underscore labels pass ("_dmarc.bücher.example"), so DNS names built on a domain convert too.
// nullopt when a non-ASCII name cannot be converted: bytes that are not UTF-8, a code point
// IDNA2008 disallows (emoji, symbols), an "xn--" label beside it that is not valid punycode of
// a valid U-label, an empty label, a label over 63 octets or a name over 253 once converted.
std::optional<std::string> to_a_label(std::string_view domain);

}  // namespace postwarden
