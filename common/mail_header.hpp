// mail_header.hpp — reading addresses out of a message header (RFC 5322 §3.4): the From field
// for DMARC (RFC 7489 §6.6.1) and for S8 (an authenticated user sends only as addresses they own).
//
// Entry points: parse_address_list().
// Pure. The input is untrusted and may hold anything (8-bit bytes, unbalanced brackets, NULs);
// the parser is iterative, linear in the input and never throws on it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postwarden {

struct MailAddress {
    std::string local;   // as written, quotes removed
    std::string domain;  // lower-cased, no trailing dot
    std::string address() const { return local + "@" + domain; }
};

// Every mailbox of an address-list (display names, comments, quoted local parts, groups and
// obsolete routes understood). nullopt when any part is not a mailbox we can read: an unbalanced
// '<' or '>' or quote, a missing '@', an empty or address-literal domain, a non-ASCII domain
// that has no A-label spelling (idna.hpp). A group without members
// contributes nothing; an empty list gives an empty vector.
std::optional<std::vector<MailAddress>> parse_address_list(std::string_view value);

}  // namespace postwarden
