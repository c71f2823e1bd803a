// auth_server.hpp — postwarden-policyd's Dovecot authentication-policy server ([auth] listen,
// SPEC §8): HTTP/1.1 with keep-alive on Boost.Beast, POST /?command=allow|report with a JSON
// body, answered {"status":N,"msg":"..."}. The request is read at one boundary
// (auth_request.hpp), decided by pure code (auth_decision.hpp) on state in Redis (auth_store.hpp).
//
// It runs on a thread, io_context and Redis connection of its own, so the Postfix policy path
// (server.cpp) neither waits behind logins nor changes with them. Bounded: 1024 connections (a new
// one past them closes the one that has waited longest for a request, so idle connections cannot
// keep Dovecot out), request headers up to 8 KiB and bodies up to 16 KiB, 10 s for a request to
// arrive once its first byte has, 60 s of silence between requests, 10 s for a response to leave.
// The thread blocks every signal: server.cpp's signal_set stays in charge.
//
// Entry points: AuthServer (reload), serve_auth(). Boost.Beast stays inside auth_server.cpp.
// Threading: construct and destroy on the main thread; accept() and reload() from any thread.
#pragma once

#include <memory>

#include "common/config.hpp"

namespace postwarden::policy {

class AuthServer {
  public:
    // Binds [auth] listen and connects to Redis; throws std::runtime_error saying why it cannot
    // listen. Connections wait in the listen queue until accept().
    explicit AuthServer(std::shared_ptr<const Config> config);
    ~AuthServer();  // stops serving, answers nothing more, joins the thread
    AuthServer(const AuthServer&) = delete;
    AuthServer& operator=(const AuthServer&) = delete;

    // Starts taking connections: called once root is given up (server.hpp, on_started).
    void accept();
    // A new configuration for the requests that follow ([auth] listen and [redis] need a restart).
    void reload(std::shared_ptr<const Config> config);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Null when [auth] listen is empty (off), else a server bound to it; logs where it listens.
std::unique_ptr<AuthServer> serve_auth(std::shared_ptr<const Config> config);

}  // namespace postwarden::policy
