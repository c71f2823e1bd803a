// main.cpp — postwarden-milter: command line and configuration (common/daemon.hpp), the shared
// services, then libmilter.
#include <string>

#include "common/daemon.hpp"
#include "common/log.hpp"
#include "milter/callbacks.hpp"
#include "milter/services.hpp"

int main(int argc, char** argv) {
    std::string path;
    int exit_code = 0;
    auto config = postwarden::start_daemon("postwarden-milter", argc, argv, &path, &exit_code);
    if (!config) return exit_code;
    try {
        postwarden::milter::Services services(config);
        return postwarden::milter::run_milter(services);
    } catch (const std::exception& e) {
        postwarden::log::error(std::string("fatal: ") + e.what());
        return 1;
    }
}
