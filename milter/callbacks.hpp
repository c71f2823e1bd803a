// callbacks.hpp — runs the milter on libmilter (callbacks.cpp holds the extern "C" callbacks).
//
// Entry points: open_milter(), run_milter(), stop_milter(), shut_callbacks(). Threading:
// libmilter's, see callbacks.cpp; main.cpp calls these from the threads they name.
#pragma once

#include "milter/services.hpp"

namespace postwarden::milter {

// Registers the callbacks, opens the socket on [milter] listen and the metrics endpoint; false
// (logged) when it cannot. Called on the main thread, before it gives up root.
bool open_milter(const Services& services);

// Serves until libmilter stops by itself (its own signal thread, or an error); returns the
// process exit status.
int run_milter();

// A graceful stop, from the main thread (the one that sigwaits, main.cpp), never from a callback:
// answers new connections and messages 451 4.3.2 and waits (at most 10 s) for the messages past
// MAIL FROM to end. libmilter is not told to stop (main.cpp says why): call shut_callbacks() and
// exit; run_milter goes on serving nothing until then.
void stop_milter();

// After stop_milter, or after run_milter returned (or was never called): waits for callbacks still
// running and makes every later one answer tempfail untouched, so the Services may be destroyed.
void shut_callbacks();

}  // namespace postwarden::milter
