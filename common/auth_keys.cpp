// auth_keys.cpp — login-protection key names; see auth_keys.hpp.
#include "common/auth_keys.hpp"

#include "common/hash_tag.hpp"

namespace postwarden {

namespace {

constexpr int v6_client_prefix = 64;

std::string address_base(std::string_view client_id, const Config& config) {
    std::string base = config.redis.prefix;
    base += "auth:{addr:";
    base += client_id;
    base += "}:";
    return base;
}

}  // namespace

std::string auth_client_id(const IpAddress& address) {
    if (!address.v6) return address.to_string();
    return mask(address, v6_client_prefix).to_string() + "/64";
}

std::optional<std::string> parse_auth_client(std::string_view text) {
    if (auto ip = parse_ip(text)) return auth_client_id(*ip);
    std::string error;
    auto cidr = parse_cidr(text, &error);
    if (!cidr || !cidr->network.v6 || cidr->prefix != v6_client_prefix) return std::nullopt;
    return auth_client_id(cidr->network);
}

AuthAddressKeys auth_address_keys(std::string_view client_id, const Config& config) {
    auto base = address_base(client_id, config);
    return {base + "fails", base + "lock"};
}

std::string auth_login_key(std::string_view login, const Config& config) {
    std::string key = config.redis.prefix;
    key += "auth:{login:";
    append_hash_tag_text(key, login);
    key += "}:fails";
    return key;
}

std::string auth_locked_index_key(const Config& config) {
    return config.redis.prefix + "auth:locked";
}

std::string auth_block_key(const Config& config) {
    return config.redis.prefix + "block:auth";
}

int tarpit_seconds(long failures, long tarpit_after) {
    if (tarpit_after <= 0 || failures < tarpit_after) return 0;
    const long steps = failures - tarpit_after;
    return steps >= 4 ? tarpit_max_seconds : 1 << steps;  // 1, 2, 4, 8, then 15
}

}  // namespace postwarden
