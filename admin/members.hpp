// members.hpp — the operator's lists (SPEC §3) as `postwarden list` names them, and what a member
// of each must look like, so that the CLI stores exactly what the daemons match: names
// lower-cased (common/address.hpp, as policyd and the milter lower-case what they look up),
// internationalized domains in A-labels (common/idna.hpp: "Bücher.example" is stored as
// "xn--bcher-kva.example", "рф" as "xn--p1ai", in members and in per-recipient-domain list
// names alike, as policyd spells what it looks up), networks in the canonical spelling that
// common/inet.hpp's network_candidates() looks up. Alias members keep their domains as given:
// the milter compares them with the header From as written.
//
// Entry points: parse_list_name, normalize_member, lenient_member, known_lists_text.
// Pure: no Redis, no I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace postwarden::admin {

enum class MemberKind {
    address,  // block:sender, allow:sender: an envelope sender address
    domain,   // block:domain, allow:domain, allow:tld: a domain (covering its subdomains)
    network,  // block:net, allow:net: an IP address or CIDR network
    login,    // block:login: a SASL login name
    tld,      // block:tld: one label without the dot
    alias,    // alias:<login>: an address, or @domain
};

struct ListName {
    std::string name;  // as SPEC §3 writes it, without [redis] prefix: "block:sender:example.net"
    MemberKind kind;
};

// "block:net", "allow:sender:Example.NET", "alias:alice@example.com" ...; nullopt with *error
// for anything else (an unknown list, a malformed recipient domain or login).
std::optional<ListName> parse_list_name(std::string_view text, std::string* error);

// For `list add`: the member as it is stored, or nullopt with *error saying what is wrong and,
// where a likely intent is clear, what to write instead.
std::optional<std::string> normalize_member(MemberKind kind, std::string_view text,
                                            std::string* error);

// For `list del` and `list show`: the stored spelling when the text is valid, else the text
// lower-cased, so that an entry written by hand with redis-cli can still be found and removed.
std::string lenient_member(MemberKind kind, std::string_view text);

// What a member of this kind is, for messages: "an envelope sender address (user@example.com)".
std::string_view describe(MemberKind kind);

// The list names, one per line, for --help and the unknown-list message.
std::string_view known_lists_text();

// A domain name as senders and recipients carry it: labels of letters, digits and hyphens (or
// UTF-8 bytes, for SMTPUTF8 mail), at most 63 bytes each and 253 in all, no trailing dot.
// The members above check an internationalized name in its A-label spelling.
bool valid_domain(std::string_view domain, std::string* error);

}  // namespace postwarden::admin
