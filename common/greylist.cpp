// greylist.cpp — greylist keys, script arguments and reply parsing; see greylist.hpp.
#include "common/greylist.hpp"

#include "common/address.hpp"

namespace postwarden {

namespace {
// The identity is the key's hash tag: braces inside it would move the tag.
std::string sanitize_tag(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c == '{' || c == '}') c = '_';
    return out;
}
}  // namespace

GreylistKeys greylist_keys(const std::optional<IpAddress>& client, std::string_view sender,
                           std::string_view recipient, std::string_view spf_domain,
                           const Config& config) {
    GreylistKeys k;
    if (!spf_domain.empty()) {
        k.identity = sanitize_tag(canonical_domain(spf_domain));
        k.network = false;
    } else if (client) {
        int len = client->v6 ? config.greylist.subnet_v6 : config.greylist.subnet_v4;
        k.identity = Cidr{mask(*client, len), len}.to_string();
    } else {
        k.identity = "unknown";
    }
    const auto& p = config.redis.prefix;
    k.triplet = p + "grey:{" + k.identity + "}:" + canonical_address(sender) + ":" +
                canonical_address(recipient);
    k.client = p + "awl-domains:{" + k.identity + "}";
    return k;
}

long greylist_auto_allow(const GreylistKeys& keys, const Config& config) {
    return keys.network ? config.greylist.auto_allow_clients : 0;
}

std::vector<std::string> greylist_args(const GreylistKeys& keys, long long now_ms,
                                       const Config& config) {
    const auto& g = config.greylist;
    return {std::to_string(now_ms), std::to_string(g.delay), std::to_string(g.retry_window),
            std::to_string(g.pass_ttl), std::to_string(greylist_auto_allow(keys, config))};
}

std::vector<std::string> greylist_count_args(const GreylistKeys& keys,
                                             std::string_view sender_domain, long long now_ms,
                                             const Config& config) {
    auto args = greylist_args(keys, now_ms, config);
    args.push_back(canonical_domain(sender_domain));
    return args;
}

bool greylist_first_sight_applies(const Config& config) {
    return config.greylist.delay > 0;
}

std::vector<std::string> greylist_first_sight_command(const GreylistKeys& keys, long long now_ms,
                                                      const Config& config) {
    return {"SET",
            keys.triplet,
            "f" + std::to_string(now_ms),
            "NX",
            "GET",
            "EX",
            std::to_string(config.greylist.retry_window)};
}

std::optional<GreylistOutcome> parse_greylist_reply(std::string_view verdict, long long seconds) {
    GreylistVerdict v;
    if (verdict == "new")
        v = GreylistVerdict::defer_new;
    else if (verdict == "early")
        v = GreylistVerdict::defer_early;
    else if (verdict == "passed")
        v = GreylistVerdict::passed;
    else if (verdict == "known")
        v = GreylistVerdict::known;
    else if (verdict == "client")
        v = GreylistVerdict::client_allowed;
    else
        return std::nullopt;
    if (seconds < 0) return std::nullopt;
    return GreylistOutcome{v, static_cast<long>(seconds)};
}

}  // namespace postwarden
