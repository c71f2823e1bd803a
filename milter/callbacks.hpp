// callbacks.hpp — runs the milter on libmilter (callbacks.cpp holds the extern "C" callbacks).
//
// Entry point: run_milter(). Threading: libmilter's, see callbacks.cpp.
#pragma once

#include "milter/services.hpp"

namespace postwarden::milter {

// Registers the callbacks, listens on [milter] listen and serves until SIGTERM or SIGINT
// (libmilter's own signal handling; SIGHUP stops it too). Returns the process exit status.
int run_milter(const Services& services);

}  // namespace postwarden::milter
