// address.cpp — address and domain helpers. to_lower() folds ASCII only (8-bit bytes pass
// unchanged); canonical_domain() and canonical_address() also bring internationalized domains
// to A-labels, so that every spelling of one domain compares equal.
#include "common/address.hpp"

#include "common/idna.hpp"

namespace postwarden {

std::string to_lower(std::string_view text) {
    std::string out(text);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

std::string canonical_domain(std::string_view domain) {
    if (is_ascii(domain)) return to_lower(domain);
    auto a_label = to_a_label(domain);
    return a_label ? std::move(*a_label) : to_lower(domain);
}

std::string canonical_address(std::string_view address) {
    if (is_ascii(address)) return to_lower(address);
    auto at = address.rfind('@');
    if (at == std::string_view::npos) return to_lower(address);
    return to_lower(address.substr(0, at + 1)) + canonical_domain(address.substr(at + 1));
}

std::string domain_of(std::string_view address) {
    auto at = address.rfind('@');
    if (at == std::string_view::npos) return {};
    auto domain = address.substr(at + 1);
    if (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
    return to_lower(domain);
}

std::vector<std::string_view> domain_and_parents(std::string_view domain) {
    std::vector<std::string_view> out;
    if (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
    while (!domain.empty()) {
        out.push_back(domain);
        auto dot = domain.find('.');
        if (dot == std::string_view::npos) break;
        domain.remove_prefix(dot + 1);
    }
    return out;
}

std::string_view top_level_domain(std::string_view domain) {
    if (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
    if (domain.empty() || domain.front() == '[') return {};
    auto dot = domain.rfind('.');
    return dot == std::string_view::npos ? domain : domain.substr(dot + 1);
}

}  // namespace postwarden
