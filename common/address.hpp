// address.hpp — envelope addresses and domain names as postwarden compares them: lower-cased
// (SPEC §3), split at the last '@', domains walked up to their parents, internationalized
// domains in A-labels (common/idna.hpp). Pure.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace postwarden {

std::string to_lower(std::string_view text);

// The one spelling of a domain that lists hold and lookups use: A-labels, lower-cased
// (to_a_label). A name that cannot be converted is only lower-cased (ASCII): it then equals
// nothing but itself, and an entry for one of its parent domains still covers it.
std::string canonical_domain(std::string_view domain);

// An address the same way: the local part lower-cased (ASCII only; UTF-8 local parts are
// otherwise kept as they are), the domain after the last '@' as canonical_domain() spells it.
// ASCII addresses cost one scan and the lower-casing.
std::string canonical_address(std::string_view address);

// The domain part of an address, lower-cased: "" for "<>" / "" or an address without '@'.
std::string domain_of(std::string_view address);

// "a.b.example.com" → {"a.b.example.com", "b.example.com", "example.com", "com"}: the names a
// block:domain entry may be spelled as to cover this domain. A trailing dot is ignored. Views of
// `domain`, which the caller has lower-cased.
std::vector<std::string_view> domain_and_parents(std::string_view domain);

// The last label: "com" for "mail.example.com", "" for an empty domain or an address literal.
std::string_view top_level_domain(std::string_view domain);

}  // namespace postwarden
