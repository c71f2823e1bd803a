// dkim_sign.hpp — DKIM signing (RFC 6376, relaxed/relaxed; rsa-sha256, and ed25519-sha256 per
// RFC 8463) on libopendkim's signing API, the same library and canonicalization code that
// verifies inbound mail (dkim.hpp). Debian 12's libopendkim 2.11.0~beta2 signs Ed25519 keys
// (DKIM_FEATURE_ED25519; tests/milter/sign_test.cpp checks its signatures with dkimpy).
//
// Which fields are signed (RFC 6376 §5.4): those whose names are in sign_headers, every
// instance, in message order; then each name of oversign once more (§8.15: an instance added in
// transit, or a field that was absent, breaks the signature). signed_header_list() says what h=
// will hold, and the tests check libopendkim writes exactly that.
//
// Entry points: HeaderSelection, signed_header_list(), SigningLibrary (one per configuration),
// Signer (one per message: the selected header fields, then body() as chunks arrive, finish()).
//
// Threading: a SigningLibrary may be shared by any number of threads once built; a Signer
// belongs to one message and is used by one thread at a time.
//
// Memory: the body is hashed as it streams, never kept; the header fields given are bounded by
// the caller (the milter keeps only the selected ones, at most max_signed_header_bytes).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/mail/dkim_key.hpp"

struct dkim_lib;
struct dkim;

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

class SigningLibrary {
  public:
    // Throws std::runtime_error when libopendkim cannot be initialised.
    explicit SigningLibrary(HeaderSelection selection);
    ~SigningLibrary();
    SigningLibrary(const SigningLibrary&) = delete;
    SigningLibrary& operator=(const SigningLibrary&) = delete;

    dkim_lib* handle() const { return lib_; }
    const HeaderSelection& selection() const { return selection_; }
    const char** sign_names() const { return sign_names_.data(); }

  private:
    HeaderSelection selection_;
    mutable std::vector<const char*> sign_names_, oversign_names_;  // NULL-terminated, for C
    dkim_lib* lib_ = nullptr;
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
    struct Handle {
        SigningKey key;
        ::dkim* dkim = nullptr;
        std::string failure;  // set once libopendkim gave up on this key
    };
    std::shared_ptr<const SigningLibrary> library_;
    std::vector<Handle> handles_;
    std::string copy_;  // libopendkim wants a mutable buffer
};

}  // namespace postwarden::dkim
