// cli.hpp — the command line of `postwarden`, the admin CLI (SPEC §7, README "Admin CLI"):
//
//   postwarden [-c FILE] [--json] COMMAND [ARGS]
//
// Parses the arguments (options may come before or after the command; `--` ends them), loads
// the configuration every postwarden program reads, runs one command (commands.hpp) and prints
// its output: text for people, or JSON with --json; diagnostics on stderr.
//
// Entry point: run_cli. Returns the exit code (store.hpp: 0 done, 1 nothing found, 2 usage or
// invalid input, 3 Redis unreachable, 4 Redis refused).
#pragma once

#include <iosfwd>

namespace postwarden::admin {

int run_cli(int argc, char** argv, std::ostream& out, std::ostream& err);

}  // namespace postwarden::admin
