// endpoint.cpp — parse_endpoint(): "host:port", "[v6]:port", "unix:/path".
#include "common/endpoint.hpp"

#include <charconv>

namespace postwarden {

std::string Endpoint::to_string() const {
    if (kind == Kind::unix_socket) return "unix:" + path;
    if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
    return host + ":" + std::to_string(port);
}

static bool parse_port(std::string_view text, unsigned short* port) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || value == 0 || value > 65535)
        return false;
    *port = static_cast<unsigned short>(value);
    return true;
}

std::optional<Endpoint> parse_endpoint(std::string_view text, std::string* error) {
    Endpoint ep;
    if (text.substr(0, 5) == "unix:") {
        ep.kind = Endpoint::Kind::unix_socket;
        ep.path = std::string(text.substr(5));
        if (ep.path.empty() || ep.path[0] != '/') {
            *error = "unix socket path must be absolute";
            return std::nullopt;
        }
        return ep;
    }
    std::string_view host, port;
    if (!text.empty() && text[0] == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            *error = "expected [v6-address]:port";
            return std::nullopt;
        }
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string_view::npos || text.find(':') != colon) {
            *error = "expected host:port, [v6-address]:port or unix:/path";
            return std::nullopt;
        }
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    if (host.empty()) {
        *error = "missing host";
        return std::nullopt;
    }
    if (!parse_port(port, &ep.port)) {
        *error = "port must be a number from 1 to 65535";
        return std::nullopt;
    }
    ep.host = std::string(host);
    return ep;
}

}  // namespace postwarden
