// nameservers.hpp — the syntax of a [dns] nameservers value: "1.2.3.4", "1.2.3.4:5353", "::1",
// "[::1]", "[::1]:5353", comma separated. Pure (no c-ares), so the configuration parser in this
// layer checks the value and the resolver (common/dns/dns.hpp) turns entries into servers.
//
// Entry points: validate_nameservers() for the configuration parser; split_nameservers() and
// parse_nameserver() for the resolver. Threading: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postwarden::dns {

// One nameserver as c-ares takes it: an address family, the address bytes, a port.
struct NameServer {
    int family = 0;
    unsigned char address[16] = {};
    int port = 53;
};

// Parses one entry (blanks around it ignored); nullopt and *error when it is not a literal
// address with an optional port.
std::optional<NameServer> parse_nameserver(std::string_view entry, std::string* error);

// Checks one [dns] nameservers value (comma separated list); returns "" when it is valid,
// otherwise what is wrong. Also accepts an empty value (system resolver).
std::string validate_nameservers(std::string_view value);

// Splits a valid nameservers value into ResolverOptions::nameservers entries.
std::vector<std::string> split_nameservers(std::string_view value);

}  // namespace postwarden::dns
