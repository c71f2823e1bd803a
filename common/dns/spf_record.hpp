// spf_record.hpp — SPF record syntax (RFC 7208 §4.6, §7.1) for the SPF check in spf.cpp.
// libspf2's compiler accepts records the RFC calls permerror and rejects some it allows (CIDR /0,
// modifiers before mechanisms, unknown modifiers). So a record is checked against the ABNF here,
// then rewritten into a form libspf2 evaluates the RFC's way. Pure: text in, text out.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace postwarden::spf {

// Appended to a/mx domain-specs whose CIDR length is 0 for the client's family: the DNS layer
// strips it and answers "the client's own address" whenever the real name has any address,
// which is what a /0 match means. .invalid never exists (RFC 6761).
constexpr std::string_view any_address_suffix = "._pw-cidr0.invalid";

// Checks a selected record against the ABNF and returns what libspf2 should compile, or
// nullopt for a syntax error (permerror). client_v4: which CIDR length of a dual CIDR applies.
std::optional<std::string> rewrite_record(std::string_view record, bool client_v4);

}  // namespace postwarden::spf
