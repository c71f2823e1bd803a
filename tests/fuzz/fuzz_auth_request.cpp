// fuzz_auth_request.cpp — the auth-policy request reader (policyd/auth_request.hpp) on hostile
// bytes: the first line is the request target, the rest the body. Whatever it accepts goes
// through the decision, the answer's JSON and the key names, as policyd would use it.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/auth_keys.hpp"
#include "common/config.hpp"
#include "policyd/auth_decision.hpp"
#include "policyd/auth_request.hpp"

using namespace postwarden;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const Config config = default_config();
    std::string_view in(reinterpret_cast<const char*>(data), size);
    auto newline = in.find('\n');
    auto target = in.substr(0, newline);
    auto body = newline == std::string_view::npos ? std::string_view() : in.substr(newline + 1);
    const std::string_view key = (size & 1) ? "k3y" : "";
    auto parsed = policy::parse_auth_request({"POST", target, key, body}, key);
    auto* request = std::get_if<policy::AuthRequest>(&parsed);
    if (!request) return 0;
    policy::AuthState state;
    state.account_locked = size % 3 == 0;
    if (size % 5 == 0) state.locked_until = 1714557600000 + static_cast<long long>(size);
    state.login_failures = static_cast<long>(size % 11);
    (void)policy::response_body(policy::decide_allow(state, 1714557600000, config.auth));
    (void)auth_login_key(request->login, config);
    if (request->remote) (void)auth_address_keys(auth_client_id(*request->remote), config);
    return 0;
}
