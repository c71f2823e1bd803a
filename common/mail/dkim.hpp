// dkim.hpp — DKIM verification (RFC 6376, RFC 8463 ed25519-sha256) on libopendkim, with every key
// lookup sent through dns::Resolver, so [dns] nameservers and timeout_ms apply to DKIM as they do
// to SPF and DMARC (libopendkim's own resolver is never used).
//
// Entry points: Library (one per process), Verifier (one per message): header() for each header
// field, end_of_headers(), body() as chunks arrive, finish().
//
// Threading: a Library may be shared by any number of threads once built (libopendkim's library
// handle is thread-safe for verification, and dns::Resolver is). A Verifier belongs to one
// message and is used by one thread at a time.
//
// Memory: the body is hashed as it streams and never kept. Headers are kept by libopendkim until
// end_of_headers(); a message with more than max_headers fields or max_header_bytes bytes of
// header is not verified (every signature: permerror "headers too large"), and only the first
// max_signatures signatures are verified (each costs a DNS lookup), so a hostile message costs
// bounded memory and time.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/dns/dns.hpp"

struct dkim_lib;  // libopendkim's DKIM_LIB and DKIM, declared here to keep dkim.h out
struct dkim;

namespace postwarden::dkim {

enum class Result { none, pass, fail, neutral, policy, temperror, permerror };
std::string_view to_string(Result result);

struct Signature {
    Result result = Result::none;
    std::string domain;     // d=, lower-cased
    std::string selector;   // s=
    std::string algorithm;  // "rsa-sha256", "ed25519-sha256", "rsa-sha1", or ""
    std::string reason;     // why it did not pass
};

struct Limits {
    std::size_t max_headers = 1000;
    std::size_t max_header_bytes = 1024 * 1024;
    int max_signatures = 8;
};

class Library {
  public:
    // Throws std::runtime_error when libopendkim cannot be initialised.
    explicit Library(const dns::ResolverOptions& dns, Limits limits = {});
    // Key lookups through this resolver (the DKIM fuzz target serves its key this way).
    explicit Library(dns::Resolver resolver, Limits limits = {});
    ~Library();
    Library(const Library&) = delete;
    Library& operator=(const Library&) = delete;

    dkim_lib* handle() const { return lib_; }
    const Limits& limits() const { return limits_; }

  private:
    std::unique_ptr<dns::Resolver> resolver_;  // the DNS service handle libopendkim calls
    dkim_lib* lib_ = nullptr;
    Limits limits_;
};

// A header field as libopendkim reads it: cut at a NUL (see Verifier::header) and with every
// bare LF of its folding made CRLF (Postfix hands milters folded values with LF; the signer
// hashed CRLF). Empty when nothing is left.
std::string crlf_field(std::string_view field);

// Canonical body length (RFC 6376 §3.4.3, §3.4.4), counted while the body streams: tells whether
// an l= tag covered the whole body.
class BodyLength {
  public:
    void feed(std::string_view chunk);
    long long simple() const;
    long long relaxed() const;

  private:
    struct Counter {
        bool relax = false;
        long long committed = 0, held_empty = 0, line = 0;
        bool pending_space = false;
        void feed(char c);
        void end_line();
        long long total() const;
    };
    Counter simple_{false}, relaxed_{true};
};

class Verifier {
  public:
    // id: a label for libopendkim's own messages (the queue id).
    Verifier(const Library& library, std::string_view id);
    ~Verifier();
    Verifier(const Verifier&) = delete;
    Verifier& operator=(const Verifier&) = delete;

    // One header field as it was received: "Name:value" with the value's leading space and
    // folding intact (simple header canonicalization needs them).
    void header(std::string_view field);
    void end_of_headers();
    void body(std::string_view chunk);
    // The verdict of every signature verified; empty when the message carries none.
    std::vector<Signature> finish();

  private:
    const Library& library_;
    ::dkim* handle_ = nullptr;
    std::size_t headers_ = 0, header_bytes_ = 0;
    bool too_large_ = false;
    bool no_signatures_ = false;
    bool failed_ = false;  // libopendkim gave up (syntax, resources): finish() says so
    std::string failure_;
    bool count_length_ = false;  // a signature has l=: body_length_ is counted
    BodyLength body_length_;
};

}  // namespace postwarden::dkim
