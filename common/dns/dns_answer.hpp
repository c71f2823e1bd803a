// dns_answer.hpp — what a DNS lookup answers: the record types asked for, the status, the
// records decoded. Shared by the resolver (dns.hpp) and its answer cache (dns_cache.hpp), which
// would otherwise include each other. Plain values, no I/O.
//
// Entry points: Type, Status, to_string(Status), status_labels(), Answer.
// Threading: values only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace postwarden::dns {

enum class Type : std::uint16_t { a = 1, ptr = 12, mx = 15, txt = 16, aaaa = 28, spf = 99 };

enum class Status {
    ok,          // at least one record of the asked type
    nxdomain,    // the name does not exist (or cannot be encoded as a DNS name)
    nodata,      // the name exists, but has no record of that type
    temp_error,  // timeout, SERVFAIL, REFUSED, network error: ask again later
};

std::string_view to_string(Status status);
// Every Status spelled, in the enum's order (label values of the lookups metric).
std::vector<std::string> status_labels();

struct MxRecord {
    std::uint16_t preference = 0;
    std::string host;
};

struct Answer {
    Status status = Status::temp_error;
    std::vector<std::string> addresses;  // A, AAAA: textual addresses
    std::vector<std::string> texts;      // TXT, SPF: each record's strings concatenated
    std::vector<MxRecord> mx;            // MX
    std::vector<std::string> names;      // PTR: host names, without the trailing dot
    std::vector<unsigned char> packet;   // the raw answer as received, when there was one
    std::string error;                   // for temp_error: what went wrong, for the log
};

}  // namespace postwarden::dns
