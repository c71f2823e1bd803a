// daemon.cpp — the shared start of the daemons; see daemon.hpp.
#include "common/daemon.hpp"

#include <iostream>

#include "common/log.hpp"

namespace postwarden {

std::shared_ptr<const Config> start_daemon(std::string_view program, int argc, char** argv,
                                           std::string* config_path, int* exit_code) {
    const std::string name(program);
    const std::string usage = "usage: " + name +
                              " [-c FILE] [-f] [--check-config]\n"
                              "  -c FILE          configuration file (default "
                              "/etc/postwarden/postwarden.conf)\n"
                              "  -f               foreground: log to standard error instead of "
                              "syslog\n"
                              "  --check-config   validate the configuration and exit 0 (valid) "
                              "or 1\n";
    std::string path = "/etc/postwarden/postwarden.conf";
    bool foreground = false, check_only = false;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "-c" && i + 1 < argc) {
            path = argv[++i];
        } else if (arg == "-f") {
            foreground = true;
        } else if (arg == "--check-config") {
            check_only = true;
        } else if (arg == "-h" || arg == "--help") {
            std::cout << usage;
            return *exit_code = 0, nullptr;
        } else {
            std::cerr << name << ": unknown argument '" << arg << "'\n" << usage;
            return *exit_code = 1, nullptr;
        }
    }
    std::string error;
    auto config = load_config(path, &error);
    if (!config) {
        std::cerr << name << ": " << error << "\n";
        return *exit_code = 1, nullptr;
    }
    if (check_only) {
        std::cout << path << ": configuration is valid\n";
        return *exit_code = 0, nullptr;
    }
    log::open(name, foreground);
    log::set_min_level(config->log.level);
    *config_path = path;
    return config;
}

}  // namespace postwarden
