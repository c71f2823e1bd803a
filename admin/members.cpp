// members.cpp — list names and member validation; see members.hpp.
#include "admin/members.hpp"

#include "common/address.hpp"
#include "common/idna.hpp"
#include "common/inet.hpp"

namespace postwarden::admin {

namespace {

bool is_control_or_space(unsigned char c) {
    return c <= 0x20 || c == 0x7f;
}

bool has_control_or_space(std::string_view text) {
    for (unsigned char c : text)
        if (is_control_or_space(c)) return true;
    return false;
}

std::string quoted(std::string_view text) {
    return "'" + std::string(text) + "'";
}

bool valid_label(std::string_view label, std::string* error) {
    if (label.empty()) return *error = "empty label", false;
    if (label.size() > 63) return *error = "label longer than 63 bytes", false;
    if (label.front() == '-' || label.back() == '-')
        return *error = "label starts or ends with '-'", false;
    for (unsigned char c : label) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c >= 0x80;
        if (!ok) return *error = std::string("character '") + char(c) + "' not allowed", false;
    }
    return true;
}

// "[192.0.2.1]", "[IPv6:2001:db8::1]": the address literal a sender's domain may be.
bool valid_address_literal(std::string_view text) {
    if (text.size() < 3 || text.front() != '[' || text.back() != ']') return false;
    auto inner = text.substr(1, text.size() - 2);
    if (to_lower(inner.substr(0, 5)) == "ipv6:") inner.remove_prefix(5);
    return parse_ip(inner).has_value();
}

// How the daemons compare a domain (common/address.hpp): lower-cased, and an internationalized
// one in A-labels, "Bücher.example" → "xn--bcher-kva.example". Aliases keep the spelling given:
// the milter compares them with the header From as written.
enum class Spelling { a_labels, as_given };

// A domain that is valid as typed, spelled for storing; its DNS limits (labels of 63 octets,
// 253 in all) apply to the A-label spelling, which is what DNS holds.
std::optional<std::string> spelled_domain(std::string_view text, Spelling spelling,
                                          std::string* error) {
    std::string why;
    if (spelling == Spelling::as_given || is_ascii(text)) {
        if (!valid_domain(text, &why)) return *error = why, std::nullopt;
        return to_lower(text);
    }
    auto a_label = to_a_label(text);
    if (!a_label)
        return *error = "not a valid internationalized domain name (IDNA2008)", std::nullopt;
    if (!valid_domain(*a_label, &why)) return *error = *a_label + ": " + why, std::nullopt;
    return a_label;
}

std::optional<std::string> domain_member(std::string_view text, std::string* error,
                                         Spelling spelling = Spelling::a_labels) {
    std::string why;
    if (!text.empty() && text.front() == '@')
        return *error = "write the domain without '@' (" + std::string(text.substr(1)) + ")",
               std::nullopt;
    if (text.starts_with("*.") || text.starts_with("."))
        return *error = "write the domain alone: an entry covers its subdomains already",
               std::nullopt;
    if (text.find('@') != std::string_view::npos)
        return *error = "an address, not a domain (use a sender list)", std::nullopt;
    if (!text.empty() && text.front() == '[')
        return *error = "an address literal, not a domain (use block:net / allow:net)",
               std::nullopt;
    return spelled_domain(text, spelling, error);
}

std::optional<std::string> address_member(std::string_view text, std::string* error,
                                          Spelling spelling = Spelling::a_labels) {
    if (text.size() >= 2 && text.front() == '<' && text.back() == '>')
        return *error = "write the address without <>", std::nullopt;
    auto at = text.rfind('@');
    if (at == std::string_view::npos)
        return *error = "not an address: no '@' (a domain goes into a domain list)", std::nullopt;
    auto local = text.substr(0, at), domain = text.substr(at + 1);
    if (local.empty()) return *error = "empty local part before '@'", std::nullopt;
    if (has_control_or_space(text))
        return *error = "contains a space or control character", std::nullopt;
    if (valid_address_literal(domain)) return to_lower(text);
    std::string why;
    auto spelled = spelled_domain(domain, spelling, &why);
    if (!spelled) return *error = "domain '" + std::string(domain) + "': " + why, std::nullopt;
    return to_lower(text.substr(0, at + 1)) + *spelled;  // a UTF-8 local part stays as it is
}

std::optional<std::string> network_member(std::string_view text, std::string* error) {
    auto cidr = parse_cidr(text, error);
    if (!cidr) return std::nullopt;
    // A bare address is stored bare and a network as net/len: network_candidates() looks up
    // both spellings, each in its canonical form (RFC 5952 for v6).
    if (text.find('/') == std::string_view::npos) return cidr->network.to_string();
    return cidr->to_string();
}

std::optional<std::string> login_member(std::string_view text, std::string* error) {
    if (text.empty()) return *error = "empty login", std::nullopt;
    if (has_control_or_space(text))
        return *error = "contains a space or control character", std::nullopt;
    return to_lower(text);
}

std::optional<std::string> tld_member(std::string_view text, std::string* error) {
    if (!text.empty() && text.front() == '.')
        return *error = "write the TLD without the dot (" + std::string(text.substr(1)) + ")",
               std::nullopt;
    auto one_label = [&] {
        return *error = "one label only (a domain to exempt goes into allow:tld)", std::nullopt;
    };
    if (text.find('.') != std::string_view::npos) return one_label();
    std::string label = to_lower(text);
    if (!is_ascii(text)) {  // "рф" is stored as "xn--p1ai", as sender domains are looked up
        auto a_label = to_a_label(text);
        if (!a_label) return *error = "not a valid internationalized TLD (IDNA2008)", std::nullopt;
        if (a_label->find('.') != std::string::npos) return one_label();  // "。" is a dot too
        label = std::move(*a_label);
    }
    std::string why;
    if (!valid_label(label, &why)) return *error = why, std::nullopt;
    return label;
}

std::optional<std::string> alias_member(std::string_view text, std::string* error) {
    if (!text.empty() && text.front() == '@') {
        auto domain = domain_member(text.substr(1), error, Spelling::as_given);
        if (!domain) return std::nullopt;
        return "@" + *domain;
    }
    return address_member(text, error, Spelling::as_given);
}

}  // namespace

bool valid_domain(std::string_view domain, std::string* error) {
    if (domain.empty()) return *error = "empty domain", false;
    if (domain.back() == '.') return *error = "write the domain without the trailing dot", false;
    if (domain.size() > 253) return *error = "domain longer than 253 bytes", false;
    std::size_t pos = 0;
    while (true) {
        auto dot = domain.find('.', pos);
        auto label = domain.substr(pos, dot == std::string_view::npos ? dot : dot - pos);
        if (!valid_label(label, error)) return false;
        if (dot == std::string_view::npos) return true;
        pos = dot + 1;
    }
}

std::optional<ListName> parse_list_name(std::string_view text, std::string* error) {
    auto lower = to_lower(text);
    auto unknown = [&] {
        *error =
            "unknown list " + quoted(text) + "; the lists are:\n" + std::string(known_lists_text());
        return std::nullopt;
    };
    if (lower.starts_with("alias:")) {
        auto login = lower.substr(6);
        if (login.empty() || has_control_or_space(login))
            return *error = "alias:LOGIN needs a login without spaces", std::nullopt;
        return ListName{lower, MemberKind::alias};
    }
    if (lower == "block:login" || lower == "block:auth") return ListName{lower, MemberKind::login};
    if (lower == "block:tld") return ListName{lower, MemberKind::tld};
    if (lower == "allow:tld") return ListName{lower, MemberKind::domain};
    for (std::string_view level : {"block:", "allow:"}) {
        if (!lower.starts_with(level)) continue;
        auto rest = std::string_view(lower).substr(level.size());
        auto colon = rest.find(':');
        auto what = rest.substr(0, colon);
        MemberKind kind;
        if (what == "sender")
            kind = MemberKind::address;
        else if (what == "domain")
            kind = MemberKind::domain;
        else if (what == "net")
            kind = MemberKind::network;
        else
            return unknown();
        if (colon != std::string_view::npos) {  // per recipient domain, named as policyd spells it
            std::string why;
            auto domain = spelled_domain(rest.substr(colon + 1), Spelling::a_labels, &why);
            if (!domain)
                return *error = "list " + quoted(text) + ": recipient domain: " + why, std::nullopt;
            return ListName{lower.substr(0, level.size() + colon + 1) + *domain, kind};
        }
        return ListName{lower, kind};
    }
    return unknown();
}

std::optional<std::string> normalize_member(MemberKind kind, std::string_view text,
                                            std::string* error) {
    switch (kind) {
        case MemberKind::address:
            return address_member(text, error);
        case MemberKind::domain:
            return domain_member(text, error);
        case MemberKind::network:
            return network_member(text, error);
        case MemberKind::login:
            return login_member(text, error);
        case MemberKind::tld:
            return tld_member(text, error);
        case MemberKind::alias:
            return alias_member(text, error);
    }
    return std::nullopt;
}

std::string lenient_member(MemberKind kind, std::string_view text) {
    std::string ignored;
    if (auto member = normalize_member(kind, text, &ignored)) return *member;
    return to_lower(text);
}

std::string_view describe(MemberKind kind) {
    switch (kind) {
        case MemberKind::address:
            return "an envelope sender address (user@example.com)";
        case MemberKind::domain:
            return "a domain, which covers its subdomains (example.com)";
        case MemberKind::network:
            return "an IP address or CIDR network (192.0.2.0/24, 2001:db8::/32)";
        case MemberKind::login:
            return "a SASL login name";
        case MemberKind::tld:
            return "a TLD without the dot (icu)";
        case MemberKind::alias:
            return "an address the login may send as, or @domain";
    }
    return "";
}

std::string_view known_lists_text() {
    return "  block:sender  allow:sender   envelope sender addresses\n"
           "  block:domain  allow:domain   sender domains (and their subdomains)\n"
           "  block:net     allow:net      client IP addresses or CIDR networks\n"
           "  block:sender:RCPTDOMAIN ... allow:net:RCPTDOMAIN   the same, for mail to RCPTDOMAIN\n"
           "  block:login                  SASL login names (refused sending)\n"
           "  block:auth                   SASL login names (refused logging in, in Dovecot)\n"
           "  block:tld                    TLDs without the dot (icu)\n"
           "  allow:tld                    sender domains exempt from block:tld\n"
           "  alias:LOGIN                  addresses (or @domain) LOGIN may send as\n";
}

}  // namespace postwarden::admin
