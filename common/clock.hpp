// clock.hpp — the wall clock as the Redis scripts and keys read it: unix time in milliseconds.
// Only the shells (sessions, handlers, the CLI) read it; the pure cores and the scripts take the
// time as an argument, so tests control it.
//
// Entry points: unix_now_ms. Threading: any thread.
#pragma once

#include <chrono>

namespace postwarden {

inline long long unix_now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace postwarden
