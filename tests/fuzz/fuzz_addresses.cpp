// fuzz_addresses.cpp — address, domain, IP, CIDR, endpoint and quota-window parsing on hostile
// text; a parsed network must print back to something that parses to the same network, and an
// internationalized domain's A-label spelling is ASCII that converts to itself.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/address.hpp"
#include "common/config.hpp"
#include "common/endpoint.hpp"
#include "common/idna.hpp"
#include "common/inet.hpp"

using namespace postwarden;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    std::string error;
    if (auto ip = parse_ip(text)) {
        auto again = parse_ip(ip->to_string());
        if (!again || !(*again == *ip)) __builtin_trap();
        (void)network_candidates(*ip);
    }
    if (auto cidr = parse_cidr(text, &error)) {
        auto again = parse_cidr(cidr->to_string(), &error);
        if (!again || !(again->network == cidr->network) || again->prefix != cidr->prefix)
            __builtin_trap();
    }
    (void)parse_cidr_list(text, &error);
    if (auto ep = parse_endpoint(text, &error)) (void)parse_endpoint(ep->to_string(), &error);
    (void)parse_quota_windows(text, &error);
    (void)domain_and_parents(domain_of(text));
    (void)top_level_domain(text);
    if (auto a_label = to_a_label(text))
        if (!is_ascii(*a_label) || to_a_label(*a_label) != a_label) __builtin_trap();
    (void)canonical_address(text);
    return 0;
}
