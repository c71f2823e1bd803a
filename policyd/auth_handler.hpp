// auth_handler.hpp — one auth-policy request from its HTTP parts to its HTTP answer: read it
// (auth_request.hpp), ask Redis (auth_store.hpp), decide (auth_decision.hpp), log the line and
// count the metrics. The HTTP server (auth_server.cpp) only moves bytes.
//
// Logs (SPEC §6, §8): one line per refusal, per lockout and per tarpit, fixed field order:
//   auth: action=refuse reason=client-locked client=192.0.2.7 login=bob protocol=imap until=...
//   auth: action=lockout client=192.0.2.7 login=bob failures=10/600 until=...
//   auth: action=tarpit reason=tarpit client=192.0.2.7 login=bob protocol=imap delay=2
//
// Threading: the auth server's io thread. `done` is called exactly once, maybe before handle()
// returns (a request refused before Redis is asked).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/config.hpp"
#include "common/redis/redis.hpp"
#include "policyd/auth_request.hpp"
#include "policyd/auth_store.hpp"

namespace postwarden::policy {

struct HttpAnswer {
    int status = 200;
    std::string body;
    bool json = true;  // application/json, else text/plain
};

class AuthHandler {
  public:
    explicit AuthHandler(redis::Client& redis) : store_(redis) {}

    void handle(const HttpParts& http, std::shared_ptr<const Config> config,
                std::function<void(HttpAnswer)> done);

  private:
    void allow(AuthRequest request, std::shared_ptr<const Config> config,
               std::function<void(HttpAnswer)> done);
    void report(AuthRequest request, std::shared_ptr<const Config> config,
                std::function<void(HttpAnswer)> done);

    AuthStore store_;
};

}  // namespace postwarden::policy
