// dmarc.hpp — DMARC (RFC 7489) as the milter applies it (SPEC §5, S9): record parsing, the
// organizational domain from the Public Suffix List (libpsl), identifier alignment, record
// discovery and the evaluation of one From domain against the SPF and DKIM results.
//
// Entry points: parse_record(), PublicSuffixList, aligned(), discover(), evaluate().
//
// Pure apart from PublicSuffixList, which loads the list once (read-only afterwards) and from
// discover(), which asks DNS through the function it is given. Threading: a PublicSuffixList is
// immutable after construction and may be shared by any number of threads.
//
// Outside input (records from DNS, domains from headers) is untrusted: every function returns a
// value for any input and never throws on it.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/dns/dns.hpp"

struct psl_ctx_st;

namespace postwarden::dmarc {

enum class Policy { none, quarantine, reject };
enum class Alignment { relaxed, strict };

std::string_view to_string(Policy policy);

struct Record {
    Policy p = Policy::none;
    std::optional<Policy> sp;  // subdomain policy; p when absent
    Alignment adkim = Alignment::relaxed;
    Alignment aspf = Alignment::relaxed;
    int pct = 100;
};

// Parses one TXT string. nullopt (with *error set) when it is not a usable DMARC record: v=DMARC1
// must be the first tag. A record whose p= is missing or invalid is still a record, with p=none
// (RFC 7489 §6.6.3: that is how a receiver treats it when the rest of it is valid). Unknown tags
// are ignored; sp, adkim, aspf and pct fall back to their defaults when invalid.
std::optional<Record> parse_record(std::string_view text, std::string* error);

// The Public Suffix List: Debian's publicsuffix file when installed, else libpsl's built-in copy.
class PublicSuffixList {
  public:
    PublicSuffixList();  // throws std::runtime_error when no list can be loaded
    ~PublicSuffixList();
    PublicSuffixList(const PublicSuffixList&) = delete;
    PublicSuffixList& operator=(const PublicSuffixList&) = delete;

    // RFC 7489 §3.2: the registrable domain, lower-cased, without a trailing dot. A name that is
    // itself a public suffix (or that the list cannot place) is its own organizational domain.
    std::string organizational_domain(std::string_view domain) const;

  private:
    psl_ctx_st* psl_;
};

// Identifier alignment (§3.1): strict wants equal names; relaxed equal organizational domains.
bool aligned(std::string_view a, std::string_view b, Alignment mode, const PublicSuffixList& psl);

enum class Result { none, pass, fail, temperror, permerror };
std::string_view to_string(Result result);

// What record discovery (§6.6.3) found for one From domain.
struct Discovery {
    enum class Status { found, none, temperror } status = Status::none;
    Record record;
    std::string record_domain;  // where it was found: the From domain or its org domain
    std::string org_domain;
};

using TxtLookup = std::function<dns::Answer(const std::string& name)>;

// Looks up _dmarc.<from_domain>, then _dmarc.<org domain> when that differs. Several DMARC
// records at one name count as none (§6.6.3 step 4); a temporary DNS error is temperror.
Discovery discover(std::string_view from_domain, const TxtLookup& lookup,
                   const PublicSuffixList& psl);

// The authenticated identifiers DMARC may use. SPF counts only for the MAIL FROM identity (the
// HELO name for the null sender): a HELO result never stands in for it (CVE-2019-20790).
struct Identifiers {
    bool spf_pass = false;
    bool spf_temperror = false;
    std::string spf_domain;
    std::vector<std::string> dkim_pass_domains;  // d= of signatures that verified
    bool dkim_temperror = false;                 // a key lookup failed temporarily
};

struct Evaluation {
    Result result = Result::none;
    std::string from_domain;
    Policy policy = Policy::none;  // the policy to apply: p or sp, after pct sampling
    Policy published = Policy::none;
    bool sampled_out = false;  // pct < 100 and this message fell outside it
    // A failure that a temporary error may have caused: enforce with a tempfail, never a reject.
    bool maybe_temporary = false;
    // SPF or DKIM aligned with the From domain (per the record's adkim/aspf; relaxed when the
    // record could not be fetched). A temperror that nothing aligned with is answered 451
    // (SPEC §10): the policy it hid may be p=reject.
    bool aligned = false;
    std::string reason;  // for the log and the header comment
};

// random_percent in [0, 100): the caller's random draw for pct (tests pass fixed values).
Evaluation evaluate(std::string_view from_domain, const Discovery& discovery,
                    const Identifiers& ids, const PublicSuffixList& psl, int random_percent);

}  // namespace postwarden::dmarc
