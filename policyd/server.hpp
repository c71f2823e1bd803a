// server.hpp — postwarden-policyd's process: listeners on every [policyd] listen address (TCP and
// unix sockets), the connection limit, the Redis client and SPF service the sessions share, and
// the signals (SIGHUP reloads the configuration, SIGTERM/SIGINT drain and exit).
//
// Threading: one io_context thread for all sockets and Redis; SPF runs on SpfService's pool.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/config.hpp"

namespace postwarden::policy {

// Runs until SIGTERM/SIGINT. Returns the process exit code. config_path is re-read on SIGHUP;
// on_reload, when set, is given each configuration a SIGHUP loaded, and on_started is called
// once the listeners are open and root is given up (both for the auth server).
int run_server(std::shared_ptr<const Config> config, const std::string& config_path,
               std::function<void(std::shared_ptr<const Config>)> on_reload = {},
               std::function<void()> on_started = {});

}  // namespace postwarden::policy
