// inet.hpp — IP addresses and CIDR networks, v4 and v6: parsing, matching, masking and the
// canonical spellings used as Redis set members (block:net, allow:net) and greylist triplets.
// Pure: no sockets, no DNS.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postwarden {

struct IpAddress {
    bool v6 = false;
    std::array<std::uint8_t, 16> bytes{};  // v4 uses the first 4

    int bits() const { return v6 ? 128 : 32; }
    std::string to_string() const;  // inet_ntop's spelling: RFC 5952 for v6
    bool operator==(const IpAddress&) const = default;
};

// Accepts dotted-quad v4 and any RFC 4291 v6 text; an IPv4-mapped v6 address (::ffff:a.b.c.d)
// is returned as the v4 address, so one client has one spelling.
std::optional<IpAddress> parse_ip(std::string_view text);

// The address with all bits after the first `prefix` cleared.
IpAddress mask(const IpAddress& address, int prefix);

struct Cidr {
    IpAddress network;  // host bits are zero
    int prefix = 0;

    bool contains(const IpAddress& address) const;
    std::string to_string() const;  // "192.0.2.0/24", "2001:db8::/32"
};

// "a.b.c.d", "a.b.c.d/n", "v6", "v6/n". Set host bits are an error: "10.1.2.3/8" is more likely a
// typo than a wish, and Postfix warns about it too.
std::optional<Cidr> parse_cidr(std::string_view text, std::string* error);

// Comma and/or whitespace separated CIDRs (trusted_networks).
std::optional<std::vector<Cidr>> parse_cidr_list(std::string_view text, std::string* error);

bool any_contains(const std::vector<Cidr>& networks, const IpAddress& address);

// Every spelling under which a list may hold a network containing `address`: the bare address,
// then "net/len" for len = bits() down to 0. A set lookup of these finds any matching entry that
// was written canonically (see parse_cidr and README "Redis keys").
std::vector<std::string> network_candidates(const IpAddress& address);
// Their number (bits() + 2) and the j-th of them, spelled alone.
inline std::size_t network_candidate_count(const IpAddress& address) {
    return static_cast<std::size_t>(address.bits()) + 2;
}
std::string network_candidate(const IpAddress& address, std::size_t j);

}  // namespace postwarden
