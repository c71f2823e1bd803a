// nameservers.cpp — the syntax of a [dns] nameservers value (nameservers.hpp): pure, so the
// configuration parser checks it without linking the resolver.
#include "common/nameservers.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

namespace postwarden::dns {
namespace {

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
        text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t'))
        text.remove_suffix(1);
    return text;
}

bool parse_port(std::string_view text, int* port) {
    int value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || value < 1 || value > 65535)
        return false;
    *port = value;
    return true;
}

bool parse_address(const std::string& host, NameServer* server) {
    if (inet_pton(AF_INET, host.c_str(), server->address) == 1) {
        server->family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, host.c_str(), server->address) == 1) {
        server->family = AF_INET6;
        return true;
    }
    return false;
}

// One entry: "1.2.3.4", "1.2.3.4:5353", "::1", "[::1]", "[::1]:5353".
std::optional<NameServer> parse_one(std::string_view entry, std::string* error) {
    NameServer server;
    std::string host;
    std::string_view port;
    if (entry.starts_with('[')) {
        auto close = entry.find(']');
        if (close == std::string_view::npos) {
            *error = "missing ']' in '" + std::string(entry) + "'";
            return std::nullopt;
        }
        host = entry.substr(1, close - 1);
        std::string_view rest = entry.substr(close + 1);
        if (!rest.empty() && !rest.starts_with(':')) {
            *error = "unexpected text after ']' in '" + std::string(entry) + "'";
            return std::nullopt;
        }
        if (!rest.empty()) port = rest.substr(1);
        if (rest == ":") port = "x";  // an empty port is an error, not the default
    } else if (std::count(entry.begin(), entry.end(), ':') == 1) {
        auto colon = entry.find(':');
        host = entry.substr(0, colon);
        port = entry.substr(colon + 1);
        if (port.empty()) port = "x";
    } else {
        host = entry;  // an IPv4 literal, or a bare IPv6 literal (several colons)
    }
    if (!port.empty() && !parse_port(port, &server.port)) {
        *error = "bad port in '" + std::string(entry) + "' (1-65535)";
        return std::nullopt;
    }
    if (!parse_address(host, &server)) {
        *error = "'" + host + "' is not an IP address (c-ares needs literal nameservers)";
        return std::nullopt;
    }
    return server;
}

}  // namespace

std::optional<NameServer> parse_nameserver(std::string_view entry, std::string* error) {
    return parse_one(trim(entry), error);
}

std::vector<std::string> split_nameservers(std::string_view value) {
    std::vector<std::string> entries;
    while (!value.empty()) {
        auto comma = value.find(',');
        auto entry = trim(value.substr(0, comma));
        if (!entry.empty()) entries.emplace_back(entry);
        if (comma == std::string_view::npos) break;
        value.remove_prefix(comma + 1);
    }
    return entries;
}

std::string validate_nameservers(std::string_view value) {
    if (trim(value).empty()) return {};
    auto entries = split_nameservers(value);
    if (entries.empty()) return "no nameserver in the list";
    for (const auto& entry : entries) {
        std::string error;
        if (!parse_one(entry, &error)) return error;
    }
    return {};
}

}  // namespace postwarden::dns
