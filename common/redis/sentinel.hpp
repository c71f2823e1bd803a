// sentinel.hpp — finding the Redis master through Redis Sentinel (SPEC §11), as the Sentinel
// client guidelines ask: the Sentinels are asked one after the other with SENTINEL
// get-master-addr-by-name, the first that answers moves to the head of the list, and each of them
// is watched (SUBSCRIBE +switch-master) so that a failover is followed as soon as the first
// announces it (the one that led it; the others repeat it once its configuration reaches them). The
// client (redis.cpp) checks with ROLE that the address it was given is a master.
//
// Entry points: Sentinels (start, stop, find_master), parse_master_address,
// parse_switch_master (pure: what a Sentinel says is checked here, at one boundary).
//
// Threading: the io_context's thread only, like the Client that owns it. Callbacks are never
// called inside find_master()/stop(); after stop() none is called at all.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/endpoint.hpp"
#include "common/redis/redis_types.hpp"

namespace boost::asio {
class io_context;
}

namespace postwarden::redis {

// The reply of SENTINEL get-master-addr-by-name: ["host", "port"]. nullopt, with *problem
// saying why, for nil (the Sentinel does not know the name) or anything else.
std::optional<Endpoint> parse_master_address(const Value& reply, std::string* problem);

// The payload of a +switch-master message, "<name> <old-host> <old-port> <new-host> <new-port>":
// the new master when the message is about master_name and well formed, else nullopt.
std::optional<Endpoint> parse_switch_master(std::string_view payload, std::string_view master_name);

class Sentinels {
  public:
    // master, or nullopt and why no Sentinel named one.
    using Found = std::function<void(std::optional<Endpoint> master, const std::string& problem)>;
    // A Sentinel announced a new master (+switch-master), or the watch was (re)established and
    // the master should be asked again (nullopt): a switch may have been missed meanwhile.
    using Changed = std::function<void(const std::optional<Endpoint>& master)>;

    // options: sentinels, master_name, sentinel_password and timeout_ms are used.
    Sentinels(boost::asio::io_context& io, const Options& options, Changed changed);
    ~Sentinels();  // stop()s
    Sentinels(const Sentinels&) = delete;
    Sentinels& operator=(const Sentinels&) = delete;

    // Opens a watch on every Sentinel; one that is lost is opened again (100 ms doubling to 2 s
    // between attempts). A silent watch is noticed by a PING every second that must be answered
    // within timeout_ms.
    void start();
    void stop();

    // Asks the Sentinels in turn, each given timeout_ms to connect and timeout_ms to answer;
    // done is called once, posted.
    void find_master(Found done);

  private:
    class Impl;
    std::shared_ptr<Impl> impl_;  // shared with in-flight handlers
};

}  // namespace postwarden::redis
