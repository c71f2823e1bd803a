// dkim_sign.cpp — relaxed canonicalization, SHA-256 and signatures on OpenSSL; see
// dkim_sign.hpp.
#include "common/mail/dkim_sign.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <stdexcept>

namespace postwarden::dkim {

namespace {

bool iequals(std::string_view a, std::string_view b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
        return std::tolower(static_cast<unsigned char>(x)) ==
               std::tolower(static_cast<unsigned char>(y));
    });
}

bool blank(char c) {
    return c == ' ' || c == '\t';
}

struct MdCtxFree {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

// The signature over the canonical header data: RSASSA-PKCS1-v1_5 with SHA-256 (RFC 6376
// §3.3.1), or Ed25519 over the data's SHA-256 (RFC 8463 §3). Empty when OpenSSL fails.
std::string sign(const PrivateKey& key, std::string_view data) {
    MdCtx ctx(EVP_MD_CTX_new());
    if (!ctx || !key.pkey) return "";
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_size = 0;
    const auto* in = reinterpret_cast<const unsigned char*>(data.data());
    std::size_t in_size = data.size();
    if (key.type == KeyType::ed25519) {
        if (EVP_Digest(in, in_size, digest, &digest_size, EVP_sha256(), nullptr) != 1) return "";
        in = digest;
        in_size = digest_size;
    }
    const EVP_MD* md = key.type == KeyType::rsa ? EVP_sha256() : nullptr;
    std::size_t size = 0;
    if (EVP_DigestSignInit(ctx.get(), nullptr, md, nullptr, key.pkey.get()) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &size, in, in_size) != 1)
        return "";
    std::string sig(size, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &size, in,
                       in_size) != 1)
        return "";
    sig.resize(size);
    return base64(reinterpret_cast<const unsigned char*>(sig.data()), sig.size());
}

// b= folded for Postfix: lines of at most 72 characters, continued with "\n\t ".
std::string folded(const std::string& b) {
    std::string out;
    for (std::size_t at = 0; at < b.size(); at += 72)
        out += (at ? "\n\t " : "") + b.substr(at, 72);
    return out;
}

// The fields hashed for h= (RFC 6376 §5.4.2): for each name, the last instance not yet used;
// a name with none left contributes nothing.
std::string signed_fields(const std::vector<std::string>& fields,
                          const std::vector<std::string>& h) {
    std::vector<bool> used(fields.size(), false);
    std::string out;
    for (const auto& name : h) {
        for (std::size_t i = fields.size(); i-- > 0;) {
            if (used[i] || !iequals(field_name_of(fields[i]), name)) continue;
            used[i] = true;
            out += relaxed_header(fields[i]);
            break;
        }
    }
    return out;
}

}  // namespace

bool HeaderSelection::signs(std::string_view name) const {
    return std::any_of(sign.begin(), sign.end(), [&](const auto& s) { return iequals(s, name); });
}

std::vector<std::string> signed_header_list(const std::vector<std::string>& names,
                                            const HeaderSelection& selection) {
    std::vector<std::string> h;
    for (const auto& name : names)
        if (selection.signs(name)) h.push_back(name);
    h.insert(h.end(), selection.oversign.begin(), selection.oversign.end());
    return h;
}

std::string_view field_name_of(std::string_view field) {
    auto colon = field.find(':');
    if (colon == std::string_view::npos) return {};
    auto name = field.substr(0, colon);
    while (!name.empty() && blank(name.back()))
        name.remove_suffix(1);
    return name;
}

std::string relaxed_header(std::string_view field) {
    std::string out;
    for (char c : field_name_of(field))
        out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    out.push_back(':');
    auto colon = field.find(':');
    auto value = colon == std::string_view::npos ? std::string_view() : field.substr(colon + 1);
    // Blanks before the value's first character go; a colon inside the value is text like any
    // other, so "Re: x" keeps its space.
    bool space = false, started = false;
    for (char c : value) {
        if (c == '\r' || c == '\n') continue;  // unfolding
        if (blank(c)) {
            space = true;
            continue;
        }
        if (space && started) out.push_back(' ');
        space = false;
        started = true;
        out.push_back(c);
    }
    return out + "\r\n";
}

// ---- body ---------------------------------------------------------------------------------

struct RelaxedBody::Hash {
    MdCtx ctx{EVP_MD_CTX_new()};
};

RelaxedBody::RelaxedBody() : RelaxedBody(false) {}

RelaxedBody::RelaxedBody(bool keep_text) : hash_(std::make_unique<Hash>()), keep_text_(keep_text) {
    if (!hash_->ctx || EVP_DigestInit_ex(hash_->ctx.get(), EVP_sha256(), nullptr) != 1)
        throw std::runtime_error("OpenSSL: cannot start SHA-256");
    out_.reserve(64 * 1024 + 16);
}

RelaxedBody::~RelaxedBody() = default;

void RelaxedBody::flush() {
    if (keep_text_) text_ += out_;
    EVP_DigestUpdate(hash_->ctx.get(), out_.data(), out_.size());
    out_.clear();
}

// One byte of content (not a line end, not a blank).
void RelaxedBody::put(char c) {
    for (; empty_lines_ > 0; --empty_lines_)
        out_ += "\r\n";
    if (space_) out_.push_back(' ');
    space_ = false;
    content_ = true;
    out_.push_back(c);
}

void RelaxedBody::feed(std::string_view chunk) {
    for (char c : chunk) {
        if (cr_ && c != '\n') put('\r');  // a CR alone is content
        cr_ = false;
        if (c == '\r') {
            cr_ = true;
        } else if (c == '\n') {
            if (content_)
                out_ += "\r\n";
            else
                ++empty_lines_;
            content_ = space_ = false;
        } else if (blank(c)) {
            space_ = true;
        } else {
            put(c);
        }
        if (out_.size() >= 64 * 1024) flush();
    }
}

std::string RelaxedBody::finish() {
    if (cr_) put('\r');
    cr_ = false;
    if (content_) out_ += "\r\n";  // the last line had no line end
    content_ = space_ = false;
    empty_lines_ = 0;  // empty lines at the end do not count
    flush();
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    EVP_DigestFinal_ex(hash_->ctx.get(), digest, &size);
    return base64(digest, size);
}

// ---- signer -------------------------------------------------------------------------------

Signer::Signer(std::shared_ptr<const SigningLibrary> library, std::vector<SigningKey> keys,
               const std::vector<std::string>& fields, std::string_view)
    : library_(std::move(library)), keys_(std::move(keys)), fields_(fields) {
    if (keys_.size() > max_signing_keys) keys_.resize(max_signing_keys);
}

Signer::~Signer() = default;

void Signer::body(std::string_view chunk) {
    body_.feed(chunk);
}

std::vector<MadeSignature> Signer::finish(std::vector<std::string>* problems) {
    std::vector<std::string> names;
    for (const auto& f : fields_)
        names.emplace_back(field_name_of(f));
    const auto h = signed_header_list(names, library_->selection());
    std::string h_tag;
    for (const auto& name : h)
        h_tag += (h_tag.empty() ? "" : ":") + name;
    const std::string bh = body_.finish(), hashed = signed_fields(fields_, h);
    const auto now = std::to_string(static_cast<long long>(std::time(nullptr)));
    std::vector<MadeSignature> out;
    for (const auto& k : keys_) {
        const std::string algorithm(algorithm_of(k.key->type));
        // Folded as Postfix stores it; the hash covers its relaxed form, b= empty (§3.7).
        const std::string value = "v=1; a=" + algorithm + "; c=relaxed/relaxed; d=" + k.domain +
                                  "; s=" + k.selector + ";\n\tt=" + now + "; bh=" + bh +
                                  ";\n\th=" + h_tag + ";\n\tb=";
        auto header = relaxed_header("DKIM-Signature:" + value);
        header.resize(header.size() - 2);  // the signature field is hashed without its CRLF
        const auto b = sign(*k.key, hashed + header);
        if (b.empty()) {
            problems->push_back(k.selector + "._domainkey." + k.domain +
                                ": OpenSSL could not sign");
            continue;
        }
        out.push_back({k.domain, k.selector, algorithm, value + folded(b)});
    }
    return out;
}

}  // namespace postwarden::dkim
