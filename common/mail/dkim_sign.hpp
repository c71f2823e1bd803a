// dkim_sign.hpp — DKIM signing (RFC 6376, relaxed/relaxed; rsa-sha256, and ed25519-sha256 per
// RFC 8463): one relaxed canonicalization (header and body) for both algorithms, SHA-256 and the
// signature from OpenSSL on the key parsed once (dkim_key.hpp). Verification stays with
// libopendkim (dkim.hpp), which the tests use, with dkimpy, to check what this signs.
//
// Why not libopendkim's signing API: Debian 12's libopendkim 2.11.0~beta2 signs both
// algorithms correctly, but leaks about 470 bytes of OpenSSL state for every Ed25519 signature
// (dkim_privkey_load; LeakSanitizer shows it, RSA does not leak), and it takes the key as text
// and decodes it again for every signature (OpenSSL 3.0's decoder: three quarters of an Ed25519
// signature's cost, a third of an RSA one's). docs/benchmarks.md has the figures.
//
// Which fields are signed (RFC 6376 §5.4): those whose names are in sign_headers, every
// instance, in message order; then each name of oversign once more (§8.15: an instance added in
// transit, or a field that was absent, breaks the signature). h= is signed_header_list().
// Instances are hashed bottom-up (§5.4.2).
//
// Entry points: HeaderSelection, signed_header_list(), SigningLibrary (one per configuration),
// Signer (one per message: the selected header fields, then body() as chunks arrive, finish()),
// relaxed_header() and RelaxedBody (the canonicalization, for the tests).
//
// Threading: a SigningLibrary may be shared by any number of threads once built; a Signer
// belongs to one message and is used by one thread at a time.
//
// Memory: the body is canonicalized and hashed as it streams (at most 64 KiB of it buffered),
// never kept; the header fields given are bounded by the caller (the milter keeps only the
// selected ones, at most max_signed_header_bytes).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/mail/dkim_key.hpp"

namespace postwarden::dkim {

constexpr std::size_t max_signed_header_bytes = 1024 * 1024;
constexpr std::size_t max_signing_keys = 8;  // signatures per message

struct HeaderSelection {
    std::vector<std::string> sign;            // lower-case field names
    std::vector<std::string> oversign;        // lower-case field names
    bool signs(std::string_view name) const;  // name compared case-insensitively
};

// h= for a message whose header field names are `names`, top to bottom.
std::vector<std::string> signed_header_list(const std::vector<std::string>& names,
                                            const HeaderSelection& selection);

// The name of a header field "Name: value" (blanks before the colon dropped), or "" if none.
std::string_view field_name_of(std::string_view field);

// The configuration's header selection, shared by the messages of one configuration.
class SigningLibrary {
  public:
    explicit SigningLibrary(HeaderSelection selection) : selection_(std::move(selection)) {}
    const HeaderSelection& selection() const { return selection_; }

  private:
    HeaderSelection selection_;
};

// A header field in relaxed canonical form (RFC 6376 §3.4.2): "name:value\r\n", the name
// lower-cased, folding removed, blanks runs one space, none around the colon or at the end.
std::string relaxed_header(std::string_view field);

// The relaxed body canonicalization (RFC 6376 §3.4.4) and its SHA-256, fed in chunks. Line ends
// are CRLF or a bare LF; blank runs become one space, blanks at line ends and empty lines at the
// end go; a last line without a line end gets one.
class RelaxedBody {
  public:
    RelaxedBody();
    ~RelaxedBody();
    RelaxedBody(const RelaxedBody&) = delete;
    RelaxedBody& operator=(const RelaxedBody&) = delete;
    void feed(std::string_view chunk);
    std::string finish();  // the hash, base64 (bh=)
    // For tests: the canonical text instead of its hash (kept only when asked at construction).
    explicit RelaxedBody(bool keep_text);
    const std::string& text() const { return text_; }

  private:
    void put(char c);
    void flush();
    struct Hash;
    std::unique_ptr<Hash> hash_;
    std::string out_;  // canonical bytes waiting to be hashed
    std::string text_;
    bool keep_text_ = false;
    std::size_t empty_lines_ = 0;  // held back: they count only if text follows
    bool space_ = false, cr_ = false, content_ = false;
};

struct SigningKey {
    std::string domain, selector;  // d=, s=
    std::shared_ptr<const PrivateKey> key;
};

struct MadeSignature {
    std::string domain, selector, algorithm;
    std::string value;  // the DKIM-Signature field's value, folded with "\n\t" (as a milter
                        // hands it to Postfix), without the leading space
};

class Signer {
  public:
    // fields: the message's selected header fields (HeaderSelection::signs), each "Name:value"
    // as received (folding intact), top to bottom. Keys past max_signing_keys are ignored.
    Signer(std::shared_ptr<const SigningLibrary> library, std::vector<SigningKey> keys,
           const std::vector<std::string>& fields, std::string_view id);
    ~Signer();
    Signer(const Signer&) = delete;
    Signer& operator=(const Signer&) = delete;

    void body(std::string_view chunk);
    // One signature per key that signed; why each other one did not, in *problems.
    std::vector<MadeSignature> finish(std::vector<std::string>* problems);

  private:
    std::shared_ptr<const SigningLibrary> library_;
    std::vector<SigningKey> keys_;
    std::vector<std::string> fields_;
    RelaxedBody body_;
};

}  // namespace postwarden::dkim
