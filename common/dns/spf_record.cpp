// spf_record.cpp — SPF record syntax checks and the rewrite for libspf2; see spf_record.hpp.
#include "common/dns/spf_record.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <vector>

namespace postwarden::spf {

namespace {

// libspf2's compiler accepts records the RFC calls permerror and rejects some it allows
// (CIDR /0, modifiers before mechanisms, unknown modifiers). So records are checked against
// the ABNF here, then rewritten into a form libspf2 evaluates the RFC's way.

bool is_alnum(char c) {
    return std::isalnum(static_cast<unsigned char>(c));
}
bool is_alpha(char c) {
    return std::isalpha(static_cast<unsigned char>(c));
}

// macro-string; `exp_text` allows the c, r, t letters and spaces (explanation text only).
bool valid_macro_string(std::string_view text, bool exp_text = false) {
    for (size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == ' ' && exp_text) continue;
        if (c < 0x21 || c > 0x7e) return false;
        if (c != '%') continue;
        if (++i >= text.size()) return false;
        if (text[i] == '%' || text[i] == '_' || text[i] == '-') continue;
        if (text[i] != '{' || ++i >= text.size()) return false;
        char letter = static_cast<char>(std::tolower(static_cast<unsigned char>(text[i])));
        std::string_view letters = exp_text ? "slodiphcrtv" : "slodiphv";
        if (letters.find(letter) == std::string_view::npos) return false;
        ++i;
        while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])))
            ++i;
        if (i < text.size() && (text[i] == 'r' || text[i] == 'R')) ++i;
        while (i < text.size() &&
               std::string_view(".-+,/_=").find(text[i]) != std::string_view::npos)
            ++i;
        if (i >= text.size() || text[i] != '}') return false;
    }
    return true;
}

bool valid_toplabel(std::string_view label) {
    if (label.empty() ||
        !std::all_of(label.begin(), label.end(), [](char c) { return is_alnum(c) || c == '-'; }))
        return false;
    if (!is_alnum(label.front()) || !is_alnum(label.back())) return false;
    bool has_alpha = std::any_of(label.begin(), label.end(), is_alpha);
    return has_alpha || label.find('-') != std::string_view::npos;
}

// domain-spec = macro-string domain-end; domain-end = "." toplabel ["."] / macro-expand
bool valid_domain_spec(std::string_view spec) {
    if (spec.empty() || !valid_macro_string(spec)) return false;
    if (spec.ends_with('}')) return true;
    if (spec.ends_with('.')) spec.remove_suffix(1);
    auto dot = spec.rfind('.');
    return dot != std::string_view::npos && dot > 0 && valid_toplabel(spec.substr(dot + 1));
}

// "/" followed by 0-limit, no leading zeros.
std::optional<int> cidr_value(std::string_view digits, int limit) {
    if (digits.empty() || digits.size() > 3 || (digits.size() > 1 && digits[0] == '0'))
        return std::nullopt;
    int value = 0;
    for (char c : digits) {
        if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
        value = value * 10 + (c - '0');
    }
    if (value > limit) return std::nullopt;
    return value;
}

struct Cidrs {
    std::optional<int> v4, v6;
};

// Splits "domain-spec/24//64" into the domain-spec and its dual CIDR lengths.
std::optional<std::pair<std::string_view, Cidrs>> split_dual_cidr(std::string_view arg) {
    Cidrs cidrs;
    auto dual = arg.find("//");
    if (dual != std::string_view::npos) {
        cidrs.v6 = cidr_value(arg.substr(dual + 2), 128);
        if (!cidrs.v6) return std::nullopt;
        arg = arg.substr(0, dual);
    }
    auto slash = arg.rfind('/');
    if (slash != std::string_view::npos &&
        arg.find_first_not_of("0123456789", slash + 1) == std::string_view::npos) {
        cidrs.v4 = cidr_value(arg.substr(slash + 1), 32);
        if (!cidrs.v4) return std::nullopt;
        arg = arg.substr(0, slash);
    }
    return std::pair{arg, cidrs};
}

bool valid_ip4_network(std::string_view text) {
    int parts = 0;
    size_t start = 0;
    while (true) {
        size_t dot = text.find('.', start);
        auto part = text.substr(start, dot == std::string_view::npos ? dot : dot - start);
        if (!cidr_value(part, 255)) return false;
        ++parts;
        if (dot == std::string_view::npos) break;
        start = dot + 1;
    }
    return parts == 4;
}

struct Rewriter {
    bool client_v4;
    std::string mechanisms;
    std::string modifiers;
    bool seen_redirect = false;
    bool seen_exp = false;

    void emit(char qualifier, std::string_view text) {
        mechanisms += ' ';
        if (qualifier) mechanisms += qualifier;
        mechanisms += text;
    }

    bool modifier(std::string_view name, std::string_view value) {
        if (!is_alpha(name.front()) || !std::all_of(name.begin(), name.end(), [](char c) {
                return is_alnum(c) || std::strchr("-_.", c);
            }))
            return false;
        std::string lower(name);
        std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
        if (lower == "redirect" || lower == "exp") {
            bool& seen = lower == "redirect" ? seen_redirect : seen_exp;
            if (seen || !valid_domain_spec(value)) return false;
            seen = true;
            modifiers += " " + lower + "=" + std::string(value);
            return true;
        }
        return valid_macro_string(value);  // unknown modifiers are ignored (§6)
    }

    // a and mx: a CIDR length of 0 for the client's family becomes the any-address lookup.
    bool host_mechanism(char qualifier, std::string_view name, std::string_view arg) {
        auto split = split_dual_cidr(arg);
        if (!split) return false;
        auto [domain, cidrs] = *split;
        if (!domain.empty() && (domain.front() != ':' || !valid_domain_spec(domain.substr(1))))
            return false;
        auto cidr = client_v4 ? cidrs.v4 : cidrs.v6;
        if (cidr != 0) {
            // Only the client family's length matters; the other one may be a /0 libspf2
            // would refuse.
            std::string length;
            if (cidr) length = (client_v4 ? "/" : "//") + std::to_string(*cidr);
            emit(qualifier, std::string(name) + std::string(domain) + length);
            return true;
        }
        std::string spec = domain.empty() ? std::string("%{d}") : std::string(domain.substr(1));
        emit(qualifier, std::string(name) + ":" + spec + std::string(any_address_suffix));
        return true;
    }

    bool ip_mechanism(char qualifier, std::string_view name, std::string_view value) {
        bool v4 = name == "ip4";
        auto slash = value.find('/');
        std::string network(value.substr(0, slash));
        std::optional<int> cidr = v4 ? 32 : 128;
        if (slash != std::string_view::npos)
            cidr = cidr_value(value.substr(slash + 1), v4 ? 32 : 128);
        in6_addr scratch;
        bool ok =
            v4 ? valid_ip4_network(network) : inet_pton(AF_INET6, network.c_str(), &scratch) == 1;
        if (!ok || !cidr) return false;
        if (*cidr != 0) return emit(qualifier, std::string(name) + ":" + std::string(value)), true;
        // libspf2 reads /0 as "no length"; two halves cover the whole family.
        emit(qualifier, v4 ? "ip4:0.0.0.0/1" : "ip6:::/1");
        emit(qualifier, v4 ? "ip4:128.0.0.0/1" : "ip6:8000::/1");
        return true;
    }

    bool directive(std::string_view term) {
        char qualifier = 0;
        if (std::string_view("+-?~").find(term.front()) != std::string_view::npos) {
            qualifier = term.front();
            term.remove_prefix(1);
        }
        auto end = term.find_first_of(":/");
        std::string name(term.substr(0, end));
        std::transform(name.begin(), name.end(), name.begin(), ::tolower);
        std::string_view arg = end == std::string_view::npos ? "" : term.substr(end);
        if (name == "all") return arg.empty() && (emit(qualifier, "all"), true);
        if (name == "a" || name == "mx") return host_mechanism(qualifier, name, arg);
        if (name == "ip4" || name == "ip6")
            return arg.starts_with(':') && ip_mechanism(qualifier, name, arg.substr(1));
        bool needs_domain = name == "include" || name == "exists";
        if (!needs_domain && name != "ptr") return false;
        if (arg.empty() && !needs_domain) return emit(qualifier, name), true;
        if (!arg.starts_with(':') || !valid_domain_spec(arg.substr(1))) return false;
        return emit(qualifier, name + std::string(arg)), true;
    }

    bool term(std::string_view term) {
        auto equals = term.find('=');
        auto colon_or_slash = term.find_first_of(":/");
        if (equals != std::string_view::npos && equals > 0 && equals < colon_or_slash)
            return modifier(term.substr(0, equals), term.substr(equals + 1));
        return directive(term);
    }
};

}  // namespace

std::optional<std::string> rewrite_record(std::string_view record, bool client_v4) {
    Rewriter rewriter{client_v4, {}, {}};
    record.remove_prefix(6);  // "v=spf1", already matched
    size_t start = 0;
    while (start < record.size()) {
        if (record[start] != ' ') return std::nullopt;
        while (start < record.size() && record[start] == ' ')
            ++start;
        size_t end = std::min(record.find(' ', start), record.size());
        if (end > start && !rewriter.term(record.substr(start, end - start))) return std::nullopt;
        start = end;
    }
    return "v=spf1" + rewriter.mechanisms + rewriter.modifiers;
}

}  // namespace postwarden::spf
