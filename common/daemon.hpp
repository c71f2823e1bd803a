// daemon.hpp — how both daemons start: the command line every postwarden program shares
// (SPEC §2: -c FILE, -f, --check-config), the configuration, and the log.
//
//   postwarden-policyd [-c FILE] [-f] [--check-config]
//   postwarden-milter  [-c FILE] [-f] [--check-config]
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/config.hpp"

namespace postwarden {

// Parses the arguments and loads the configuration; with it, opens the log (syslog, or stderr
// with -f). Returns nullptr when the program is done: --help, a bad argument or configuration
// (said on stderr, FILE:LINE: [section] key: ...), or --check-config; *exit_code says how.
std::shared_ptr<const Config> start_daemon(std::string_view program, int argc, char** argv,
                                           std::string* config_path, int* exit_code);

}  // namespace postwarden
