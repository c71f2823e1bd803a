// endpoint.hpp — listen and connect addresses as operators write them (SPEC §2):
// "host:port", "[v6]:port" or "unix:/path". Pure: parsing only, no sockets.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace postwarden {

struct Endpoint {
    enum class Kind { inet, unix_socket };
    Kind kind = Kind::inet;
    std::string host;  // inet: host name or literal address without brackets
    unsigned short port = 0;
    std::string path;  // unix_socket: file system path

    std::string to_string() const;  // the canonical spelling, re-parsable
};

// Parses one endpoint; on failure returns nullopt and sets *error to what is wrong.
std::optional<Endpoint> parse_endpoint(std::string_view text, std::string* error);

}  // namespace postwarden
