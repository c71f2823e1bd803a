// auth_request.hpp — one Dovecot authentication-policy request (SPEC §8) read from its HTTP
// parts: POST /?command=allow|report with a JSON body (Dovecot's auth_policy_request_attributes:
// login, remote, and for report success and policy_reject). This is the one boundary where
// untrusted input is checked; whatever it refuses gets an HTTP status, a fixed reason word for
// the metrics, and changes no state. Pure: no sockets, no Redis, no clock.
//
// Checks, in order: method (405), path (404), X-API-Key when [auth] api_key is set (401, compared
// in constant time), command (400), body size (413), UTF-8 (400), JSON (400), fields (400).
//
// Entry points: AuthCommand, AuthRequest, AuthRefusal, parse_auth_request, body_limit.
// Threading: pure functions.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "common/inet.hpp"

namespace postwarden::policy {

// The body Dovecot sends is a few hundred bytes; IMAP ID (device_id) adds at most a few KiB.
inline constexpr std::size_t body_limit = 16 * 1024;
inline constexpr std::size_t login_limit = 1024;

enum class AuthCommand { allow, report };

struct AuthRequest {
    AuthCommand command = AuthCommand::allow;
    std::string login;                // lower-cased; may be empty
    std::optional<IpAddress> remote;  // none when Dovecot knows no client address
    bool success = false;             // report only
    bool policy_reject = false;       // report only
};

struct AuthRefusal {
    int http_status = 400;
    std::string_view reason;  // a fixed word: method, path, api-key, command, too-large, utf8,
                              // json, fields
    std::string text;         // the response body, for a human
};

struct HttpParts {
    std::string_view method, target;
    std::optional<std::string_view> api_key;  // the X-API-Key header, when present
    std::string_view body;
};

std::variant<AuthRequest, AuthRefusal> parse_auth_request(const HttpParts& http,
                                                          std::string_view api_key);

// Whether text is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
bool valid_utf8(std::string_view text);

}  // namespace postwarden::policy
