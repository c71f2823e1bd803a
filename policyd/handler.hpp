// handler.hpp — answers one policy request: asks Redis (lists, greylisting, quotas) and SPF, feeds
// the answers to the pure decision functions (decision.hpp) and logs one line per decision.
//
// Entry point: Handler::handle(). Threading: everything runs on the io_context thread; the reply
// callback is called exactly once, either inside handle() (DUNNO for requests it does not decide)
// or later from a Redis or SPF callback: the caller must accept both (policyd/session.hpp does).
// Redis failures are answered per the check's fail_mode, within [redis] timeout_ms per step.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/config.hpp"
#include "common/lists.hpp"
#include "common/redis/list_cache.hpp"
#include "common/redis/redis.hpp"
#include "policyd/greylist_store.hpp"
#include "policyd/protocol.hpp"
#include "policyd/quota_store.hpp"

namespace postwarden::policy {

class SpfService;

class Handler {
  public:
    Handler(redis::Client& redis, SpfService& spf, ListCache& lists);

    // `reply` receives the text after "action=".
    void handle(const Request& request, std::shared_ptr<const Config> config,
                std::function<void(std::string)> reply);

  private:
    SpfService& spf_;
    ListCache& lists_;
    ListKeys list_keys_;
    GreylistStore greylist_;
    QuotaStore quota_;
};

}  // namespace postwarden::policy
