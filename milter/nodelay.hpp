// nodelay.hpp — TCP_NODELAY for libmilter's inet sockets, which libmilter never sets.
//
// Why: at end of message a milter writes each modification (Authentication-Results inserted,
// forged ones removed) and then its final reply as separate small packets, and the MTA answers
// none of them. With Nagle's algorithm on, the final reply waits for the ACK of the packet before
// it, which the MTA's kernel delays (40 ms on Linux): one stall per message, about 7 messages/s
// for one Postfix session through OpenDKIM + OpenDMARC over inet sockets. libmilter offers no hook
// on its accepted sockets, but Linux copies TCP_NODELAY from a listening socket to the sockets it
// accepts, so setting it on the listener smfi_opensocket() made is enough (docs/benchmarks.md,
// Milter).
//
// Entry points: listening_sockets(), set_nodelay_on_new_listeners().
// Threading: call from the main thread around smfi_opensocket(), before smfi_main().
#pragma once

#include <vector>

namespace postwarden::milter {

// The descriptors of this process that are listening TCP sockets.
std::vector<int> listening_sockets();

// Sets TCP_NODELAY on every listening TCP socket not in `before`; returns how many it set.
int set_nodelay_on_new_listeners(const std::vector<int>& before);

}  // namespace postwarden::milter
