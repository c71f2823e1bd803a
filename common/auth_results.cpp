// auth_results.cpp — formatting and authserv-id parsing of Authentication-Results; see
// auth_results.hpp.
#include "common/auth_results.hpp"

#include <algorithm>

#include "common/address.hpp"

namespace postwarden {

namespace {

// RFC 2045 token characters, plus '@' which RFC 8601 allows in property values (pvalue).
bool token_char(unsigned char c) {
    if (c <= ' ' || c >= 0x7f) return false;
    static const std::string_view specials = "()<>,;:\\\"/[]?=";
    return specials.find(static_cast<char>(c)) == std::string_view::npos;
}

// RFC 2045 token characters proper, as an authserv-id has them: not '@'.
bool id_char(unsigned char c) {
    return token_char(c) && c != '@';
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

namespace {

// The content of the quoted string that starts at value[i] ('"'): quoted-pairs unescaped, line
// breaks of folding removed; nullopt when it is not closed.
std::optional<std::string> quoted_string(std::string_view value, std::size_t i) {
    std::string out;
    for (++i; i < value.size(); ++i) {
        char c = value[i];
        if (c == '"') return out;
        if (c == '\\' && i + 1 < value.size())
            c = value[++i];
        else if (c == '\r' || c == '\n')
            continue;
        out.push_back(c);
    }
    return std::nullopt;
}

// How an id compares: without case, surrounding blanks, or the final dot of an absolute name.
std::string normalized_id(std::string_view id) {
    while (!id.empty() && (id.front() == ' ' || id.front() == '\t'))
        id.remove_prefix(1);
    while (!id.empty() && (id.back() == ' ' || id.back() == '\t'))
        id.remove_suffix(1);
    if (id.size() > 1 && id.back() == '.') id.remove_suffix(1);
    return to_lower(id);
}

}  // namespace

std::optional<std::string> authserv_id_of(std::string_view value) {
    // RFC 8601 §2.2: authserv-id is a value (RFC 2045: token / quoted-string) after optional
    // CFWS. A token ends at the first character that cannot be in one, so "ours(junk",
    // "ours;..." and "ours@junk" all give "ours".
    auto i = std::min(skip_cfws(value, 0), value.size());
    if (i < value.size() && value[i] == '"') {
        auto content = quoted_string(value, i);
        if (!content) return std::nullopt;
        auto id = normalized_id(*content);
        if (id.empty()) return std::nullopt;
        return id;
    }
    auto start = i;
    while (i < value.size() && id_char(static_cast<unsigned char>(value[i])))
        ++i;
    if (i == start) return std::nullopt;
    return normalized_id(value.substr(start, i - start));
}

bool claims_authserv_id(std::string_view value, std::string_view ours) {
    auto id = authserv_id_of(value);
    return id && *id == normalized_id(ours);
}

std::string authserv_id_problem(std::string_view id) {
    if (id.empty()) return "must not be empty";
    if (id.size() > 253) return "longer than a host name (253 characters)";
    for (unsigned char c : id) {
        if (c >= 0x80) return "not ASCII: write an internationalized name as its A-label (xn--…)";
        if (!id_char(c))
            return "must be a host name, one token: no blanks, control characters or any of "
                   "()<>@,;:\\\"/[]?=";
    }
    auto name = id.back() == '.' ? id.substr(0, id.size() - 1) : id;
    if (name.empty() || name.front() == '.' || name.back() == '.' ||
        name.find("..") != std::string_view::npos)
        return "has an empty label";
    return "";
}

}  // namespace postwarden
