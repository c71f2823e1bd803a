// main.cpp — postwarden-policyd: command line and configuration (common/daemon.hpp), then the
// server (server.hpp).
#include <string>

#include "common/daemon.hpp"
#include "common/log.hpp"
#include "common/metrics_http.hpp"
#include "policyd/auth_server.hpp"
#include "policyd/metrics.hpp"
#include "policyd/server.hpp"

int main(int argc, char** argv) {
    std::string path;
    int exit_code = 0;
    auto config = postwarden::start_daemon("postwarden-policyd", argc, argv, &path, &exit_code);
    if (!config) return exit_code;
    try {
        // Bound here, before run_server gives up root; [metrics] changes need a restart.
        auto endpoint = postwarden::metrics::serve(config->metrics.policyd_listen,
                                                   postwarden::policy::metrics().registry);
        // [auth] listen, too; it answers once run_server has given up root, and takes the
        // configurations SIGHUP loads.
        auto auth = postwarden::policy::serve_auth(config);
        return postwarden::policy::run_server(
            config, path,
            [&auth](auto fresh) {
                if (auth) auth->reload(std::move(fresh));
            },
            [&auth] {
                if (auth) auth->accept();
            });
    } catch (const std::exception& e) {
        postwarden::log::error(std::string("fatal: ") + e.what());
        return 1;
    }
}
