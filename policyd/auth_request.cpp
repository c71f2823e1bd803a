// auth_request.cpp — reading an auth-policy request; see auth_request.hpp.
#include "policyd/auth_request.hpp"

#include <nlohmann/json.hpp>

#include "common/address.hpp"

namespace postwarden::policy {

namespace {

using json = nlohmann::json;

constexpr int max_depth = 8;  // Dovecot nests "a/b" attributes; nothing deeper is ours

AuthRefusal refuse(int status, std::string_view reason, std::string text) {
    return {status, reason, std::move(text) + "\n"};
}

// In time that depends on the length only, so the key cannot be guessed byte by byte.
bool same_key(std::string_view given, std::string_view expected) {
    if (given.size() != expected.size()) return false;
    unsigned char diff = 0;
    for (std::size_t i = 0; i < given.size(); ++i)
        diff |= static_cast<unsigned char>(given[i] ^ expected[i]);
    return diff == 0;
}

// The value of `command` in the query; "" when absent, "?" when given twice.
std::string_view command_of(std::string_view query) {
    std::string_view found;
    bool seen = false;
    while (!query.empty()) {
        auto amp = query.find('&');
        auto param = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        if (param.substr(0, 8) != "command=") continue;
        if (seen) return "?";
        seen = true;
        found = param.substr(8);
    }
    return found;
}

std::optional<AuthRefusal> read_fields(const json& body, AuthRequest& r) {
    if (!body.is_object()) return refuse(400, "fields", "the body must be a JSON object");
    auto login = body.find("login");
    auto remote = body.find("remote");
    if (login == body.end() || !login->is_string() || remote == body.end() || !remote->is_string())
        return refuse(400, "fields", "\"login\" and \"remote\" must be strings");
    const auto& login_text = login->get_ref<const std::string&>();
    if (login_text.size() > login_limit) return refuse(400, "fields", "\"login\" is too long");
    r.login = to_lower(login_text);
    const auto& remote_text = remote->get_ref<const std::string&>();
    if (!remote_text.empty()) {
        r.remote = parse_ip(remote_text);
        if (!r.remote) return refuse(400, "fields", "\"remote\" is not an IP address");
    }
    if (r.command != AuthCommand::report) return std::nullopt;
    auto success = body.find("success");
    auto reject = body.find("policy_reject");
    if (success == body.end() || !success->is_boolean() ||
        (reject != body.end() && !reject->is_boolean()))
        return refuse(400, "fields", "report: \"success\" and \"policy_reject\" must be booleans");
    r.success = success->get<bool>();
    r.policy_reject = reject != body.end() && reject->get<bool>();
    return std::nullopt;
}

}  // namespace

bool valid_utf8(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size()) {
        unsigned char c = static_cast<unsigned char>(text[i]);
        if (c < 0x80) {
            ++i;
            continue;
        }
        int extra = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : -1;
        if (extra < 0 || c > 0xf4 || text.size() - i <= static_cast<std::size_t>(extra))
            return false;
        unsigned long cp = c & (0x3f >> extra);
        for (int k = 1; k <= extra; ++k) {
            unsigned char n = static_cast<unsigned char>(text[i + k]);
            if ((n & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (n & 0x3f);
        }
        const unsigned long min[] = {0, 0x80, 0x800, 0x10000};
        if (cp < min[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += extra + 1;
    }
    return true;
}

std::variant<AuthRequest, AuthRefusal> parse_auth_request(const HttpParts& http,
                                                          std::string_view api_key) {
    if (http.method != "POST") return refuse(405, "method", "only POST");
    auto question = http.target.find('?');
    auto path = http.target.substr(0, question);
    if (path != "/") return refuse(404, "path", "not found; the auth policy is at /");
    if (!api_key.empty() && (!http.api_key || !same_key(*http.api_key, api_key)))
        return refuse(401, "api-key", "a valid X-API-Key header is required");
    AuthRequest r;
    auto command = command_of(
        question == std::string_view::npos ? std::string_view() : http.target.substr(question + 1));
    if (command == "allow")
        r.command = AuthCommand::allow;
    else if (command == "report")
        r.command = AuthCommand::report;
    else
        return refuse(400, "command", "expected ?command=allow or ?command=report");
    if (http.body.size() > body_limit) return refuse(413, "too-large", "the body is too large");
    if (!valid_utf8(http.body)) return refuse(400, "utf8", "the body is not UTF-8");
    bool too_deep = false;
    auto depth_guard = [&too_deep](int depth, json::parse_event_t, json&) {
        if (depth > max_depth) too_deep = true;
        return !too_deep;
    };
    json body = json::parse(http.body, depth_guard, false);
    if (too_deep) return refuse(400, "json", "the JSON is nested too deep");
    if (body.is_discarded()) return refuse(400, "json", "the body is not JSON");
    if (auto refusal = read_fields(body, r)) return *refusal;
    return r;
}

}  // namespace postwarden::policy
