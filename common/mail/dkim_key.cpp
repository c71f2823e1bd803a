// dkim_key.cpp — DKIM key files, generation and records on OpenSSL; see dkim_key.hpp.
#include "common/mail/dkim_key.hpp"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

namespace postwarden::dkim {

namespace {

struct BioFree {
    void operator()(BIO* b) const { BIO_free(b); }
};
struct PkeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CtxFree {
    void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, CtxFree>;

}  // namespace

std::string base64(const unsigned char* data, std::size_t size) {
    std::string out(4 * ((size + 2) / 3) + 1, '\0');
    const int n =
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
    out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return out;
}

namespace {

// Strict base64 (RFC 4648 §4, padding required); nullopt when malformed.
std::optional<std::vector<unsigned char>> unbase64(std::string_view text) {
    if (text.empty() || text.size() % 4 != 0 || text.size() > 16384) return std::nullopt;
    const std::size_t n = text.size();
    for (std::size_t i = 0; i < n; ++i) {
        const char c = text[i];
        // '=' only as the last, or the last two, characters.
        const bool pad = c == '=' && (i == n - 1 || (i == n - 2 && text[n - 1] == '='));
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/' && !pad)
            return std::nullopt;
    }
    std::vector<unsigned char> out(n / 4 * 3);
    const int decoded = EVP_DecodeBlock(
        out.data(), reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(n));
    if (decoded < 0) return std::nullopt;
    std::size_t size = static_cast<std::size_t>(decoded);
    for (std::size_t i = text.size(); i > 0 && text[i - 1] == '='; --i)
        --size;  // EVP_DecodeBlock counts the padding as zero bytes
    out.resize(size);
    return out;
}

// The PrivateKey of a parsed OpenSSL key, or nullopt with *why.
std::optional<PrivateKey> describe(EVP_PKEY* pkey, std::string* why) {
    PrivateKey key;
    const int id = EVP_PKEY_get_id(pkey);
    if (id == EVP_PKEY_RSA) {
        key.type = KeyType::rsa;
        key.bits = EVP_PKEY_get_bits(pkey);
        if (key.bits < min_rsa_bits || key.bits > max_rsa_bits) {
            *why = "RSA key of " + std::to_string(key.bits) + " bits; " +
                   std::to_string(min_rsa_bits) + " to " + std::to_string(max_rsa_bits) +
                   " are accepted";
            return std::nullopt;
        }
        unsigned char* der = nullptr;
        const int n = i2d_PUBKEY(pkey, &der);
        if (n <= 0) return *why = "cannot encode the public key", std::nullopt;
        key.public_key = base64(der, static_cast<std::size_t>(n));
        OPENSSL_free(der);
    } else if (id == EVP_PKEY_ED25519) {
        key.type = KeyType::ed25519;
        key.bits = 256;
        unsigned char raw[32];
        std::size_t len = sizeof raw;
        if (EVP_PKEY_get_raw_public_key(pkey, raw, &len) != 1 || len != sizeof raw)
            return *why = "cannot read the Ed25519 public key", std::nullopt;
        key.public_key = base64(raw, len);
    } else {
        *why = "not an RSA or Ed25519 key";
        return std::nullopt;
    }
    Bio out(BIO_new(BIO_s_mem()));
    if (!out ||
        PEM_write_bio_PrivateKey(out.get(), pkey, nullptr, nullptr, 0, nullptr, nullptr) != 1)
        return *why = "cannot encode the private key", std::nullopt;
    char* data = nullptr;
    const long size = BIO_get_mem_data(out.get(), &data);
    key.pem.assign(data, static_cast<std::size_t>(size));
    return key;
}

bool label_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
}

// Dot-separated labels of label_char, 1..63 bytes each, 253 in all.
bool valid_labels(std::string_view name, bool lower_only) {
    if (name.empty() || name.size() > 253) return false;
    std::size_t label = 0;
    for (char c : name) {
        if (c == '.') {
            if (label == 0) return false;
            label = 0;
            continue;
        }
        if (!label_char(c) || (lower_only && std::isupper(static_cast<unsigned char>(c))))
            return false;
        if (++label > 63) return false;
    }
    return label > 0;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
        s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
        s.remove_suffix(1);
    return s;
}

}  // namespace

std::string_view algorithm_of(KeyType type) {
    return type == KeyType::rsa ? "rsa-sha256" : "ed25519-sha256";
}

std::string_view key_tag_of(KeyType type) {
    return type == KeyType::rsa ? "rsa" : "ed25519";
}

std::optional<PrivateKey> parse_private_key(std::string_view pem, std::string* why) {
    Bio in(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!in) return *why = "out of memory", std::nullopt;
    Pkey pkey(PEM_read_bio_PrivateKey(in.get(), nullptr, nullptr, nullptr));
    if (!pkey) return *why = "not a PEM private key", std::nullopt;
    auto key = describe(pkey.get(), why);
    if (key) key->pkey = std::shared_ptr<EVP_PKEY>(pkey.release(), EVP_PKEY_free);
    return key;
}

std::optional<PrivateKey> read_key_file(const std::string& path, uid_t owner, std::string* why) {
    // O_NONBLOCK: a FIFO planted at the path must not hang the reader.
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return *why = "cannot open " + path + ": " + strerror(errno), std::nullopt;
    struct Closer {
        int fd;
        ~Closer() { close(fd); }
    } closer{fd};
    struct stat st {};
    if (fstat(fd, &st) != 0) return *why = "cannot stat " + path, std::nullopt;
    if (!S_ISREG(st.st_mode)) return *why = path + " is not a regular file", std::nullopt;
    if (st.st_uid != owner)
        return *why = path + " is owned by uid " + std::to_string(st.st_uid) + ", not by uid " +
                      std::to_string(owner) + " (the milter's user)",
               std::nullopt;
    if ((st.st_mode & 077) != 0)
        return *why = path + " is open to group or others (mode 0" +
                      [&] {
                          char m[8];
                          snprintf(m, sizeof m, "%03o", static_cast<unsigned>(st.st_mode & 0777));
                          return std::string(m);
                      }() +
                      "); chmod 600 it",
               std::nullopt;
    if (st.st_size > static_cast<off_t>(max_key_file_bytes))
        return *why = path + " is larger than " + std::to_string(max_key_file_bytes) + " bytes",
               std::nullopt;
    std::string text(static_cast<std::size_t>(st.st_size), '\0');
    std::size_t got = 0;
    while (got < text.size()) {
        const ssize_t n = read(fd, text.data() + got, text.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
    }
    text.resize(got);
    std::string problem;
    auto key = parse_private_key(text, &problem);
    if (!key) *why = path + ": " + problem;
    return key;
}

PrivateKey generate_key(KeyType type, int bits) {
    PkeyCtx ctx(
        EVP_PKEY_CTX_new_id(type == KeyType::rsa ? EVP_PKEY_RSA : EVP_PKEY_ED25519, nullptr));
    if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1)
        throw std::runtime_error("OpenSSL: cannot start key generation");
    if (type == KeyType::rsa && EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), bits) != 1)
        throw std::runtime_error("OpenSSL: cannot set the key size");
    EVP_PKEY* raw = nullptr;
    if (EVP_PKEY_keygen(ctx.get(), &raw) != 1) throw std::runtime_error("OpenSSL: keygen failed");
    Pkey pkey(raw);
    std::string why;
    auto key = describe(pkey.get(), &why);
    if (!key) throw std::runtime_error("generated key: " + why);
    key->pkey = std::shared_ptr<EVP_PKEY>(pkey.release(), EVP_PKEY_free);
    return *key;
}

std::string txt_record(const PrivateKey& key) {
    return "v=DKIM1; k=" + std::string(key_tag_of(key.type)) + "; p=" + key.public_key;
}

KeyRecord parse_key_record(std::string_view txt) {
    KeyRecord r;
    bool first = true, have_p = false;
    std::size_t pos = 0;
    while (pos <= txt.size()) {
        auto end = txt.find(';', pos);
        if (end == std::string_view::npos) end = txt.size();
        auto item = trim(txt.substr(pos, end - pos));
        pos = end + 1;
        if (item.empty()) continue;
        auto eq = item.find('=');
        if (eq == std::string_view::npos) {
            r.problem = "tag without '='";
            continue;
        }
        auto name = trim(item.substr(0, eq));
        auto value = trim(item.substr(eq + 1));
        if (name == "v" && (!first || value != "DKIM1")) r.problem = "v= is not DKIM1 or not first";
        if (name == "k") {
            r.k.clear();
            for (char c : value)
                r.k.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
        }
        if (name == "p") {
            have_p = true;
            for (char c : value)
                if (!std::isspace(static_cast<unsigned char>(c))) r.p.push_back(c);
        }
        first = false;
    }
    if (!r.problem.empty()) return r;
    if (!have_p) return r.problem = "no p= tag", r;
    if (r.k != "rsa" && r.k != "ed25519") return r.problem = "unknown k=" + r.k, r;
    if (r.p.empty()) return r.problem = "p= is empty (the key is revoked)", r;
    auto der = unbase64(r.p);
    if (!der) return r.problem = "p= is not base64", r;
    if (r.k == "ed25519") {
        if (der->size() != 32) r.problem = "p= is not a 32-byte Ed25519 key";
        return r;
    }
    const unsigned char* in = der->data();
    Pkey pkey(d2i_PUBKEY(nullptr, &in, static_cast<long>(der->size())));
    if (!pkey || EVP_PKEY_get_id(pkey.get()) != EVP_PKEY_RSA)
        r.problem = "p= is not an RSA public key";
    return r;
}

bool valid_selector(std::string_view selector) {
    return valid_labels(selector, false);
}

bool valid_key_domain(std::string_view domain) {
    return valid_labels(domain, true) && domain.find('.') != std::string_view::npos;
}

std::string key_path(std::string_view key_dir, std::string_view domain, std::string_view selector) {
    std::string path(key_dir);
    if (!path.empty() && path.back() != '/') path += '/';
    return path + std::string(domain) + "/" + std::string(selector) + ".key";
}

}  // namespace postwarden::dkim
