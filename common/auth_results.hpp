// auth_results.hpp — the Authentication-Results header (RFC 8601) the milter writes, and the
// one fact it needs from incoming ones: which authserv-id they claim (SPEC §5: headers claiming
// ours are removed before ours is added, so nobody forges our verdict).
//
// Entry points: format_auth_results(), authserv_id_of(), claims_authserv_id(),
// authserv_id_problem().
// Pure: no I/O. Every string from the message or DNS is untrusted; values that are not RFC 2045
// tokens are written as quoted strings with control characters removed.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace postwarden {

struct AuthResults {
    std::string authserv_id;
    struct Spf {
        std::string result;  // "pass", "fail", ... (RFC 8601 §2.7.2)
        std::string domain;  // smtp.mailfrom (domain) or smtp.helo
    };
    std::optional<Spf> spf_mailfrom, spf_helo;
    struct Dkim {
        std::string result;
        std::string domain, selector, algorithm;  // header.d, header.s, header.a
        std::string comment;                      // why, for fail/permerror/policy
    };
    std::vector<Dkim> dkim;  // empty: "dkim=none"
    struct Dmarc {
        std::string result;
        std::string header_from;  // header.from
        std::string comment;      // "p=reject sp=none" etc.
    };
    std::vector<Dmarc> dmarc;  // one per From domain; empty: "dmarc=none"
};

// The header's value (what follows "Authentication-Results:"), folded with "\n\t" between
// result entries, as libmilter hands header values to the MTA.
std::string format_auth_results(const AuthResults& results);

// The authserv-id an Authentication-Results value starts with (RFC 8601 §2.2: a token or a
// quoted string, after comments and folding), as it compares: lower-cased, a quoted string's
// content unescaped and trimmed, the final dot of an absolute name dropped. nullopt when the value
// does not start with one.
std::optional<std::string> authserv_id_of(std::string_view value);

// True when the value claims `ours`, compared as authserv_id_of() says ("MX.example." claims
// "mx.example"). The id ends at the first character that cannot be part of a token, so
// "ours(junk" (the CVE-2020-12272 shape) counts as ours.
bool claims_authserv_id(std::string_view value, std::string_view ours);

// Why `id` cannot be our authserv-id ([milter] authserv_id), or "" when it can: it must be one
// token (we write it unquoted) shaped like a host name, so that a header can claim it.
std::string authserv_id_problem(std::string_view id);

// A value made safe for a header: a token stays as it is, anything else is a quoted string with
// control characters dropped; empty becomes "".
std::string header_value_token(std::string_view text);

}  // namespace postwarden
