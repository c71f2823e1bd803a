// address.cpp — address and domain helpers; ASCII lower-casing only (8-bit bytes pass unchanged,
// so a UTF-8 name is compared byte for byte, as Postfix does with smtputf8 addresses).
#include "common/address.hpp"

namespace postwarden {

std::string to_lower(std::string_view text) {
    std::string out(text);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
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
