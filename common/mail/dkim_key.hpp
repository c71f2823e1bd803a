// dkim_key.hpp — DKIM private keys as the signer uses them and the CLI makes and checks them:
// key files (<key_dir>/<domain>/<selector>.key, PEM), generating keys, the DNS TXT record of a
// key (RFC 6376 §3.6.1, RFC 8463 for Ed25519), and reading a published record back.
//
// Entry points: read_key_file(), parse_private_key(), generate_key(), txt_record(),
// parse_key_record(), valid_selector(), valid_key_domain(), key_path(), base64().
//
// Key files are operator input on disk: at most max_key_file_bytes, a regular file, owned by the
// reading process's user and readable by nobody else, RSA of 1024 to 8192 bits or Ed25519;
// anything else is refused with a reason. OpenSSL (libcrypto) does the parsing.
//
// Threading: every function may be called from any thread; nothing is shared.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

struct evp_pkey_st;  // OpenSSL's EVP_PKEY, declared here to keep its headers out

namespace postwarden::dkim {

enum class KeyType { rsa, ed25519 };

// "rsa-sha256" or "ed25519-sha256": what the key signs (RFC 6376 §3.3, RFC 8463).
std::string_view algorithm_of(KeyType type);
// "rsa" or "ed25519": the k= tag of the key's record.
std::string_view key_tag_of(KeyType type);

// Base64 (RFC 4648 §4, padded, no line breaks): p=, b= and bh= as DKIM writes them.
std::string base64(const unsigned char* data, std::size_t size);

struct PrivateKey {
    KeyType type = KeyType::rsa;
    int bits = 0;     // RSA modulus; 256 for Ed25519
    std::string pem;  // PKCS#8 PEM, re-encoded by OpenSSL (what keygen writes)
    // The key parsed once, for signing (OpenSSL's EVP_PKEY: immutable, used by any number of
    // threads at once).
    std::shared_ptr<evp_pkey_st> pkey;
    std::string public_key;  // p=: base64 of the SubjectPublicKeyInfo (RSA) or of the raw
                             // 32-byte key (Ed25519, RFC 8463 §4.2)
};

constexpr std::size_t max_key_file_bytes = 64 * 1024;
constexpr int min_rsa_bits = 1024, max_rsa_bits = 8192;

// Parses PEM text (PKCS#8, or PKCS#1 "RSA PRIVATE KEY"). nullopt, with *why, when it is not an
// RSA key of min_rsa_bits..max_rsa_bits or an Ed25519 key.
std::optional<PrivateKey> parse_private_key(std::string_view pem, std::string* why);

// Reads and parses a key file, refusing one that is not a regular file, is larger than
// max_key_file_bytes, is not owned by `owner`, or that group or others may read or write.
std::optional<PrivateKey> read_key_file(const std::string& path, uid_t owner, std::string* why);

// A new key; throws std::runtime_error when OpenSSL fails. bits: RSA only.
PrivateKey generate_key(KeyType type, int bits);

// The TXT record to publish at <selector>._domainkey.<domain>: "v=DKIM1; k=rsa; p=…".
std::string txt_record(const PrivateKey& key);

// A published key record (RFC 6376 §3.6.1) as `postwarden dkim check` reads it.
struct KeyRecord {
    std::string k = "rsa";  // k=, lower-cased; rsa when absent
    std::string p;          // p= with blanks removed; empty: revoked
    std::string problem;    // empty when well formed: v= first if present, k= known, p= base64
                            // of a key of that type
};
KeyRecord parse_key_record(std::string_view txt);

// RFC 6376 §3.1 selectors: dot-separated labels of letters, digits and '-' (and '_', which DNS
// allows and some operators use), at most 63 bytes each and 253 in all. Also what keeps a
// selector from Redis from naming a file outside the key directory.
bool valid_selector(std::string_view selector);
// A lower-case ASCII domain name of at least two labels, each letters, digits, '-' or '_'.
bool valid_key_domain(std::string_view domain);

// <key_dir>/<domain>/<selector>.key; both must be valid (above).
std::string key_path(std::string_view key_dir, std::string_view domain, std::string_view selector);

}  // namespace postwarden::dkim
