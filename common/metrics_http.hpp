// metrics_http.hpp — the HTTP side of a daemon's Prometheus endpoint ([metrics] policyd_listen,
// milter_listen; SPEC §6): GET /metrics answers the Registry's text; any other path is 404, any
// other method 405.
//
// It runs on a thread and io_context of its own, so it serves policyd (Asio) and the milter
// (libmilter's threads) alike and a scrape never waits behind mail. Bounded: request headers up
// to 8 KiB and no body, at most 16 connections at a time (a new one past them closes the one that
// has waited longest for a request, so idle connections cannot keep a scrape out), and 10 s for a
// request to arrive or a response to leave, after which the connection is closed. The thread blocks
// every signal: the daemon's own signal handling (Asio's signal_set, libmilter's sigwait thread)
// stays in charge.
//
// Entry point: serve(). Boost.Beast stays inside metrics_http.cpp.
#pragma once

#include <memory>
#include <optional>

#include "common/endpoint.hpp"
#include "common/metrics.hpp"

namespace postwarden::metrics {

class HttpEndpoint {
  public:
    // Binds `where` (host:port, [v6]:port or unix:/path) and starts serving; throws
    // std::runtime_error saying why when it cannot listen. `registry` must outlive it.
    HttpEndpoint(const Endpoint& where, const Registry& registry);
    ~HttpEndpoint();  // stops serving and joins the thread
    HttpEndpoint(const HttpEndpoint&) = delete;
    HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Null when `where` is empty (metrics off), else a running endpoint; logs where it listens.
std::unique_ptr<HttpEndpoint> serve(const std::optional<Endpoint>& where, const Registry& registry);

}  // namespace postwarden::metrics
