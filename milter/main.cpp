// main.cpp — postwarden-milter: command line, configuration, shared services, then libmilter.
//
//   postwarden-milter [-c FILE] [-f] [--check-config]
#include <iostream>
#include <string>

#include "common/config.hpp"
#include "common/log.hpp"
#include "milter/callbacks.hpp"
#include "milter/services.hpp"

namespace {

const char* usage =
    "usage: postwarden-milter [-c FILE] [-f] [--check-config]\n"
    "  -c FILE          configuration file (default /etc/postwarden/postwarden.conf)\n"
    "  -f               foreground: log to standard error instead of syslog\n"
    "  --check-config   validate the configuration and exit 0 (valid) or 1\n";

}  // namespace

int main(int argc, char** argv) {
    std::string path = "/etc/postwarden/postwarden.conf";
    bool foreground = false, check_only = false;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "-c" && i + 1 < argc)
            path = argv[++i];
        else if (arg == "-f")
            foreground = true;
        else if (arg == "--check-config")
            check_only = true;
        else if (arg == "-h" || arg == "--help")
            return std::cout << usage, 0;
        else
            return std::cerr << "postwarden-milter: unknown argument '" << arg << "'\n" << usage, 1;
    }
    std::string error;
    auto config = postwarden::load_config(path, &error);
    if (!config) {
        std::cerr << "postwarden-milter: " << error << "\n";
        return 1;
    }
    if (check_only) {
        std::cout << path << ": configuration is valid\n";
        return 0;
    }
    postwarden::log::open("postwarden-milter", foreground);
    try {
        postwarden::milter::Services services(config);
        return postwarden::milter::run_milter(services);
    } catch (const std::exception& e) {
        postwarden::log::error(std::string("fatal: ") + e.what());
        return 1;
    }
}
