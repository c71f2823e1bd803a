// redis_types.hpp — the values the Redis client deals in: a decoded reply (Value), a command's
// answer (Reply, Callback), the client's Options and Stats, and why a command got no answer
// (Failure). Shared by the client (redis.hpp), its connection (redis_connection.hpp) and the
// reply decoder (redis_protocol.hpp), so that those include this and not each other. Callers
// include common/redis/redis.hpp, which includes this.
//
// Entry points: Value, Options, Failure, failure_names, failure_labels(), Reply, Callback, Stats.
// Threading: values only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/config_types.hpp"
#include "common/endpoint.hpp"

namespace postwarden::metrics {
class Histogram;
class CounterFamily;
}  // namespace postwarden::metrics

namespace postwarden::redis {

// An owned copy of one RESP reply. Strings are binary-safe; arrays nest (hiredis' reader accepts
// up to 7 levels of nesting and treats deeper replies as a protocol error). A reply is bounded
// in values, string length and bytes (ReplyLimits, redis_protocol.hpp): beyond them, too, the
// connection is dropped as for a protocol error.
struct Value {
    enum class Type { nil, integer, string, status, error, array };
    Type type = Type::nil;
    long long integer = 0;
    std::string str;  // string, status and error replies
    std::vector<Value> elements;

    bool is_error() const { return type == Type::error; }
};

struct Options {
    Endpoint address;      // host:port, [v6]:port or unix:/path
    std::string password;  // sent with AUTH after every connect when not empty
    // Per command, from command() to its reply. A connection whose oldest command has waited
    // 8 × timeout_ms (at least 1 s) without a reply is dropped and reopened; the same limit
    // bounds connecting plus AUTH.
    int timeout_ms = 250;
    // Beyond this many commands awaiting replies, command() fails at once ("too many pending
    // commands"): memory stays bounded when Redis is slower than the request rate.
    std::size_t max_pending = 100000;
    // Called on the io thread each time a connection becomes ready (after AUTH): connection
    // state such as SUBSCRIBE or CLIENT TRACKING must be set up again on every new connection.
    std::function<void()> on_ready;
    // For a pub/sub client: every ["message", channel, payload] array Redis pushes, outside the
    // FIFO of command replies. Empty for an ordinary client.
    std::function<void(const Value&)> on_message;
    // Instruments of the metrics endpoint (common/metrics.hpp), shared by a daemon's clients;
    // null: not measured. latency: seconds from sending a command to its reply. failures:
    // commands answered ok=false, one series per Failure, in its order.
    metrics::Histogram* latency = nullptr;
    metrics::CounterFamily* failures = nullptr;
    // Redis Sentinel (common/redis/sentinel.hpp): when not empty, `address` is ignored; the
    // master named master_name is asked of these Sentinels (AUTH sentinel_password when not
    // empty), checked with ROLE after every connect, and followed on +switch-master.
    std::vector<Endpoint> sentinels;
    std::string master_name;
    std::string sentinel_password;
    // Redis Cluster (common/redis/cluster.hpp): commands go to the master of their key's slot;
    // seeds are the nodes first asked for the slot map (address when empty).
    bool cluster = false;
    std::vector<Endpoint> seeds;
};

// The [redis] section as Options: where Redis is (address, Sentinels or cluster seeds), its
// password and timeout. The one place every program builds its clients' options from; callers
// add their callbacks and metrics.
Options options_from(const Config::Redis& redis);

// Why a command got no answer, as Options::failures counts it ("stopped" is not counted).
enum class Failure { timeout, not_connected, connection_lost, overloaded };
inline constexpr const char* failure_names[] = {"timeout", "not_connected", "connection_lost",
                                                "overloaded"};
// failure_names as the label values of a metrics family, in Failure's order.
std::vector<std::string> failure_labels();

struct Reply {
    bool ok = false;
    std::string error;  // why there is no answer, when !ok
    Value value;        // Redis' answer, when ok
};

using Callback = std::function<void(Reply)>;

// Counters since construction, for metrics and tests.
struct Stats {
    std::uint64_t commands = 0;      // commands written to Redis (AUTH and retries included)
    std::uint64_t writes = 0;        // socket writes: pipelining makes this far below commands
    std::uint64_t timeouts = 0;      // callbacks answered "timeout"
    std::uint64_t connects = 0;      // connections that became ready
    std::uint64_t disconnects = 0;   // ready connections lost (errors, stalls, protocol errors)
    std::uint64_t late_replies = 0;  // replies that arrived after their command timed out
    std::uint64_t moved = 0;         // Redis Cluster: MOVED followed (the slot map updated)
    std::uint64_t asked = 0;         // Redis Cluster: ASK followed (a slot being migrated)
};

}  // namespace postwarden::redis
