// mail_header.cpp — the address-list parser; see mail_header.hpp.
//
// Two steps: split() walks the value once, drops comments, and cuts it into mailbox texts at
// top-level commas (group names and ';' handled there); parse_mailbox() then reads one mailbox,
// "Name <addr>" or a bare addr-spec.
#include "common/mail_header.hpp"

#include "common/address.hpp"
#include "common/idna.hpp"

namespace postwarden {

namespace {

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front()))
        s.remove_prefix(1);
    while (!s.empty() && is_space(s.back()))
        s.remove_suffix(1);
    return s;
}

struct Splitter {
    std::vector<std::string> parts;
    std::string current;
    bool in_quote = false, in_angle = false, escaped = false;
    int comment_depth = 0;

    void finish() {
        parts.push_back(current);
        current.clear();
    }

    // Returns false on a character that makes the list unreadable.
    bool feed(char c) {
        if (escaped) return escaped = false, current.push_back(c), true;
        if (c == '\\' && (in_quote || comment_depth > 0)) {
            escaped = true;
            if (in_quote) current.push_back(c);
            return true;
        }
        if (comment_depth > 0) {
            if (c == '(') ++comment_depth;
            if (c == ')') --comment_depth;
            return true;
        }
        if (c == '"') in_quote = !in_quote;
        if (in_quote) return current.push_back(c), true;
        return feed_structural(c);
    }

    bool feed_structural(char c) {
        if (c == '(') return ++comment_depth, current.push_back(' '), true;
        if (c == ')') return false;
        if (c == '<') {
            if (in_angle) return false;
            in_angle = true;
        } else if (c == '>') {
            if (!in_angle) return false;
            in_angle = false;
        } else if (!in_angle && c == ',') {
            return finish(), true;
        } else if (!in_angle && c == ':') {
            current.clear();  // a group's display name: its members follow
            return true;
        } else if (!in_angle && c == ';') {
            return finish(), true;
        }
        current.push_back(c);
        return true;
    }
};

bool domain_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c >= 0x80;
}

std::optional<std::string> parse_domain(std::string_view text) {
    auto d = to_lower(trim(text));
    while (!d.empty() && d.back() == '.')
        d.pop_back();
    if (d.empty() || d.size() > 253) return std::nullopt;
    std::size_t label = 0;
    for (char c : d) {
        if (c == '.') {
            if (label == 0) return std::nullopt;
            label = 0;
        } else if (!domain_char(static_cast<unsigned char>(c)) || ++label > 63) {
            return std::nullopt;
        }
    }
    // A name DNS cannot hold (not UTF-8, emoji …) has no DMARC policy anyone could find: it
    // is unreadable, not a domain without a policy.
    if (!is_ascii(d) && !to_a_label(d)) return std::nullopt;
    return d;
}

// An addr-spec: local@domain, the local part possibly quoted, an obsolete route stripped.
std::optional<MailAddress> parse_addr_spec(std::string_view text) {
    text = trim(text);
    if (!text.empty() && text.front() == '@') {  // obs-route "@a,@b:local@domain"
        auto colon = text.find(':');
        if (colon == std::string_view::npos) return std::nullopt;
        text = trim(text.substr(colon + 1));
    }
    bool quoted = false;
    std::size_t at = std::string_view::npos;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\\' && quoted)
            ++i;
        else if (text[i] == '"')
            quoted = !quoted;
        else if (text[i] == '@' && !quoted)
            at = i;
    }
    if (quoted || at == std::string_view::npos || at == 0) return std::nullopt;
    MailAddress a;
    for (char c : text.substr(0, at))
        if (c != '"' && !is_space(c)) a.local.push_back(c);
    auto domain = parse_domain(text.substr(at + 1));
    if (a.local.empty() || !domain) return std::nullopt;
    a.domain = *domain;
    return a;
}

// One mailbox: "Display Name <addr-spec>" or a bare addr-spec; nullopt when unreadable.
std::optional<MailAddress> parse_mailbox(std::string_view text) {
    auto open = text.find('<');
    if (open == std::string_view::npos) {
        auto spec = trim(text);
        bool quoted = false;
        for (char c : spec) {  // a bare addr-spec has no blanks outside quotes
            if (c == '"') quoted = !quoted;
            if (!quoted && is_space(c)) return std::nullopt;
        }
        return parse_addr_spec(spec);
    }
    auto close = text.find('>', open);
    if (close == std::string_view::npos || !trim(text.substr(close + 1)).empty())
        return std::nullopt;
    return parse_addr_spec(text.substr(open + 1, close - open - 1));
}

}  // namespace

std::optional<std::vector<MailAddress>> parse_address_list(std::string_view value) {
    Splitter s;
    for (char c : value)
        if (!s.feed(c)) return std::nullopt;
    if (s.in_quote || s.in_angle || s.comment_depth > 0) return std::nullopt;
    s.finish();
    std::vector<MailAddress> out;
    for (const auto& part : s.parts) {
        if (trim(part).empty()) continue;  // empty list elements (RFC 5322 §4.4) and groups
        auto mailbox = parse_mailbox(part);
        if (!mailbox) return std::nullopt;
        out.push_back(std::move(*mailbox));
    }
    return out;
}

}  // namespace postwarden
