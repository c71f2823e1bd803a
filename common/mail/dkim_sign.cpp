// dkim_sign.cpp — signing on libopendkim; see dkim_sign.hpp.
#include "common/mail/dkim_sign.hpp"

// dkim.h is C and spells bool the C99 way; C++ has no _Bool.
#define _Bool bool
#include <opendkim/dkim.h>
#undef _Bool

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "common/mail/dkim.hpp"

namespace postwarden::dkim {

namespace {

bool iequals(std::string_view a, std::string_view b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
        return std::tolower(static_cast<unsigned char>(x)) ==
               std::tolower(static_cast<unsigned char>(y));
    });
}

std::string status_text(DKIM_STAT status, ::dkim* handle) {
    const char* why = handle ? dkim_geterror(handle) : nullptr;
    if (why && *why) return why;
    const char* text = dkim_getresultstr(status);
    return text ? text : "status " + std::to_string(status);
}

// libopendkim folds with CRLF; Postfix wants a milter's header values with LF line ends.
std::string lf_folded(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (std::size_t i = 0; i < value.size(); ++i)
        if (!(value[i] == '\r' && i + 1 < value.size() && value[i + 1] == '\n'))
            out.push_back(value[i]);
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
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t'))
        name.remove_suffix(1);
    return name;
}

SigningLibrary::SigningLibrary(HeaderSelection selection)
    : selection_(std::move(selection)), lib_(dkim_init(nullptr, nullptr)) {
    if (!lib_) throw std::runtime_error("libopendkim: dkim_init failed");
    for (const auto& s : selection_.sign)
        sign_names_.push_back(s.c_str());
    sign_names_.push_back(nullptr);
    for (const auto& s : selection_.oversign)
        oversign_names_.push_back(s.c_str());
    oversign_names_.push_back(nullptr);
    unsigned int flags = DKIM_LIBFLAGS_FIXCRLF;
    dkim_options(lib_, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof flags);
    // The library copies neither list: they live as long as this object.
    auto** sign = sign_names_.data();
    auto** over = oversign_names_.data();
    if (dkim_options(lib_, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS, sign, sizeof sign) != DKIM_STAT_OK ||
        (selection_.oversign.size() > 0 &&
         dkim_options(lib_, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS, over, sizeof over) !=
             DKIM_STAT_OK)) {
        dkim_close(lib_);
        throw std::runtime_error("libopendkim: cannot set the header fields to sign");
    }
}

SigningLibrary::~SigningLibrary() {
    dkim_close(lib_);
}

Signer::Signer(std::shared_ptr<const SigningLibrary> library, std::vector<SigningKey> keys,
               const std::vector<std::string>& fields, std::string_view id)
    : library_(std::move(library)) {
    std::string label(id.empty() ? "message" : id);
    if (keys.size() > max_signing_keys) keys.resize(max_signing_keys);
    for (auto& key : keys) {
        Handle h{std::move(key), nullptr, ""};
        const auto& k = *h.key.key;
        DKIM_STAT status = DKIM_STAT_OK;
        h.dkim = dkim_sign(
            library_->handle(), reinterpret_cast<const unsigned char*>(label.c_str()), nullptr,
            const_cast<unsigned char*>(reinterpret_cast<const unsigned char*>(k.pem.c_str())),
            reinterpret_cast<const unsigned char*>(h.key.selector.c_str()),
            reinterpret_cast<const unsigned char*>(h.key.domain.c_str()), DKIM_CANON_RELAXED,
            DKIM_CANON_RELAXED,
            k.type == KeyType::rsa ? DKIM_SIGN_RSASHA256 : DKIM_SIGN_ED25519SHA256, -1, &status);
        if (!h.dkim) h.failure = "libopendkim could not start: " + status_text(status, nullptr);
        handles_.push_back(std::move(h));
    }
    for (auto& h : handles_) {
        if (!h.dkim) continue;
        // Per handle too: the library default would be every field but a few.
        (void)dkim_signhdrs(h.dkim, library_->sign_names());
        for (const auto& field : fields) {
            auto copy = crlf_field(field);
            if (copy.empty()) continue;
            DKIM_STAT status =
                dkim_header(h.dkim, reinterpret_cast<unsigned char*>(copy.data()), copy.size());
            if (status != DKIM_STAT_OK && h.failure.empty())
                h.failure = "header field refused: " + status_text(status, h.dkim);
        }
        if (DKIM_STAT status = dkim_eoh(h.dkim); status != DKIM_STAT_OK && h.failure.empty())
            h.failure = "end of header: " + status_text(status, h.dkim);
    }
}

Signer::~Signer() {
    for (auto& h : handles_)
        if (h.dkim) dkim_free(h.dkim);
}

void Signer::body(std::string_view chunk) {
    if (chunk.empty()) return;
    copy_.assign(chunk);
    for (auto& h : handles_) {
        if (!h.dkim || !h.failure.empty()) continue;
        if (DKIM_STAT status =
                dkim_body(h.dkim, reinterpret_cast<unsigned char*>(copy_.data()), copy_.size());
            status != DKIM_STAT_OK)
            h.failure = "body: " + status_text(status, h.dkim);
    }
}

std::vector<MadeSignature> Signer::finish(std::vector<std::string>* problems) {
    std::vector<MadeSignature> out;
    for (auto& h : handles_) {
        const std::string who = h.key.selector + "._domainkey." + h.key.domain;
        if (h.dkim && h.failure.empty())
            if (DKIM_STAT status = dkim_eom(h.dkim, nullptr); status != DKIM_STAT_OK)
                h.failure = "signing failed: " + status_text(status, h.dkim);
        unsigned char* value = nullptr;
        std::size_t length = 0;
        if (h.failure.empty() && dkim_getsighdr_d(h.dkim, sizeof "DKIM-Signature: " - 1, &value,
                                                  &length) != DKIM_STAT_OK)
            h.failure = "no signature produced";
        if (!h.failure.empty()) {
            problems->push_back(who + ": " + h.failure);
            continue;
        }
        out.push_back({h.key.domain, h.key.selector, std::string(algorithm_of(h.key.key->type)),
                       lf_folded({reinterpret_cast<const char*>(value), length})});
    }
    return out;
}

}  // namespace postwarden::dkim
