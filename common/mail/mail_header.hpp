// mail_header.hpp — reading addresses out of a message header (RFC 5322 §3.4): the From field
// for DMARC (RFC 9989, which reads the domains) and for S8 (an authenticated user sends only as
// addresses they own, which compares each address()).
//
// Entry points: read_address_list() (the addresses or why there are none), parse_address_list().
// Pure. The input is untrusted and may hold anything (8-bit bytes, unbalanced brackets, NULs);
// the parser is iterative, linear in the input, bounded (max_address_list_bytes,
// max_comment_depth, max_addresses) and never throws on it.
//
// What it reads: address / mailbox / group / name-addr / angle-addr / addr-spec with
// quoted-strings, quoted-pairs, nested comments and folding anywhere CFWS may stand; the
// obsolete forms of RFC 5322 §4.4 (CFWS around the dots of a local part or domain, routes
// "<@a,@b:x@y>", dots in display names, empty list elements "a@x,,b@y"); RFC 2047 encoded words
// in display names (skipped, not decoded; inside an addr-spec they are plain text, RFC 2047 §5);
// UTF-8 (RFC 6532). Beyond RFC 5322, on purpose: a display name may hold '@' ("a@x <b@y>": the
// address is the one in angle brackets), a local part may hold dots anywhere ("a..b@x", as some
// mobile carriers issued them), and a domain may end in a dot (the same DNS name).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postwarden {

struct MailAddress {
    // The local part's value: quotes and quoted-pair backslashes removed, the CFWS of obsolete
    // forms dropped, folding removed: "\"ali ce\"" gives `ali ce`, "a . b" gives `a.b`.
    std::string local;
    std::string domain;  // ASCII lower-cased, no trailing dot
    // local@domain in the form RFC 5321 §4.1.2 compares: the local part bare when it is a
    // Dot-string, else a Quoted-string (only '"' and '\' escaped). "\"alice\"@x" and "alice@x"
    // give the same text; "\"ali ce\"@x" gives "\"ali ce\"@x".
    std::string address() const;
};

constexpr std::size_t max_address_list_bytes = 64 * 1024;
constexpr int max_comment_depth = 32;
constexpr std::size_t max_addresses = 256;

struct AddressList {
    std::vector<MailAddress> addresses;  // every mailbox, group members included, in order
    // Empty when the field was read; else why not, with the byte offset where reading stopped
    // ("unbalanced '<' at byte 5"). A field that cannot be read gives no addresses at all.
    std::string error;
    bool ok() const { return error.empty(); }
};

// Every mailbox of an address-list. Not readable: what the grammar above does not cover
// (unbalanced '<' '>' '(' ')' or quotes, a '\' outside quotes, words without '.' or '<' between
// them, a missing '@' or domain, ';' outside a group, a group without ';' or inside a group, text
// after '>'), a domain that is not a host name (an address literal "[192.0.2.1]", characters
// other than letters, digits, '-', '_' and UTF-8, a label over 63 or a name over 253 bytes, a
// non-ASCII name with no A-label spelling: idna.hpp),
// invalid UTF-8 or control characters in an address, and the bounds. A group without members
// contributes nothing; an empty list gives an empty vector.
AddressList read_address_list(std::string_view value);

// The same, nullopt when not readable.
std::optional<std::vector<MailAddress>> parse_address_list(std::string_view value);

}  // namespace postwarden
