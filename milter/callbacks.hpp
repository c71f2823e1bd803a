// callbacks.hpp — runs the milter on libmilter (callbacks.cpp holds the extern "C" callbacks).
//
// Entry point: run_milter(). Threading: libmilter's, see callbacks.cpp.
#pragma once

#include <functional>

#include "milter/services.hpp"

namespace postwarden::milter {

// Registers the callbacks, listens on [milter] listen and serves until SIGTERM or SIGINT
// (libmilter's own signal handling; SIGHUP stops it too). Returns the process exit status.
// after_listen runs once the socket exists and before anything is served (socket permissions,
// dropping root); returning false stops the milter with status 1.
int run_milter(const Services& services, const std::function<bool()>& after_listen = {});

}  // namespace postwarden::milter
