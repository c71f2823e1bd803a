// auth_results.cpp — formatting and authserv-id parsing of Authentication-Results; see
// auth_results.hpp.
#include "common/auth_results.hpp"

#include "common/address.hpp"

namespace postwarden {

namespace {

// RFC 2045 token characters, plus '@' which RFC 8601 allows in property values (pvalue).
bool token_char(unsigned char c) {
    if (c <= ' ' || c >= 0x7f) return false;
    static const std::string_view specials = "()<>,;:\\\"/[]?=";
    return specials.find(static_cast<char>(c)) == std::string_view::npos;
}

std::string comment(std::string_view text) {
    std::string out = " (";
    for (unsigned char c : text)
        if (c >= ' ' && c < 0x7f && c != '(' && c != ')' && c != '\\') out.push_back(char(c));
    return out + ")";
}

void add_entry(std::string& out, const std::string& entry) {
    out += ";\n\t" + entry;
}

// Skips white space and (nested) comments; returns the position after them.
std::size_t skip_cfws(std::string_view s, std::size_t i) {
    int depth = 0;
    while (i < s.size()) {
        char c = s[i];
        if (depth > 0 && c == '\\') {
            i += 2;
            continue;
        }
        if (c == '(') {
            ++depth;
        } else if (c == ')' && depth > 0) {
            --depth;
        } else if (depth == 0 && c != ' ' && c != '\t' && c != '\r' && c != '\n') {
            break;
        }
        ++i;
    }
    return i;
}

}  // namespace

std::string header_value_token(std::string_view text) {
    bool token = !text.empty();
    for (unsigned char c : text)
        token = token && (token_char(c) || c == '@');
    if (token) return std::string(text);
    std::string out = "\"";
    for (unsigned char c : text) {
        if (c < ' ' || c == 0x7f) continue;
        if (c == '"' || c == '\\') out.push_back('\\');
        out.push_back(char(c));
    }
    return out + "\"";
}

std::string format_auth_results(const AuthResults& r) {
    std::string out = r.authserv_id;
    if (r.spf_mailfrom)
        add_entry(out, "spf=" + r.spf_mailfrom->result +
                           " smtp.mailfrom=" + header_value_token(r.spf_mailfrom->domain));
    if (r.spf_helo)
        add_entry(out, "spf=" + r.spf_helo->result +
                           " smtp.helo=" + header_value_token(r.spf_helo->domain));
    if (r.dkim.empty()) add_entry(out, "dkim=none");
    for (const auto& d : r.dkim) {
        std::string e = "dkim=" + d.result;
        if (!d.comment.empty()) e += comment(d.comment);
        if (!d.domain.empty()) e += " header.d=" + header_value_token(d.domain);
        if (!d.selector.empty()) e += " header.s=" + header_value_token(d.selector);
        if (!d.algorithm.empty()) e += " header.a=" + header_value_token(d.algorithm);
        add_entry(out, e);
    }
    if (r.dmarc.empty()) add_entry(out, "dmarc=none");
    for (const auto& d : r.dmarc) {
        std::string e = "dmarc=" + d.result;
        if (!d.comment.empty()) e += comment(d.comment);
        if (!d.header_from.empty()) e += " header.from=" + header_value_token(d.header_from);
        add_entry(out, e);
    }
    return out;
}

std::optional<std::string> authserv_id_of(std::string_view value) {
    auto i = skip_cfws(value, 0);
    auto start = i;
    // authserv-id is a value: a token or a quoted string; we only ever write tokens, and a
    // quoted one is compared by its content.
    if (i < value.size() && value[i] == '"') {
        auto end = value.find('"', i + 1);
        if (end == std::string_view::npos) return std::nullopt;
        return to_lower(value.substr(i + 1, end - i - 1));
    }
    while (i < value.size() && token_char(static_cast<unsigned char>(value[i])))
        ++i;
    if (i == start) return std::nullopt;
    return to_lower(value.substr(start, i - start));
}

bool claims_authserv_id(std::string_view value, std::string_view ours) {
    // The id ends at the first character that cannot be in a token, so "ours(junk" and
    // "ours;..." are both ours, while "ours.example.net" is somebody else's.
    auto id = authserv_id_of(value);
    return id && *id == to_lower(ours);
}

}  // namespace postwarden
