// cluster.hpp — Redis Cluster: the hash slot of a key, and ClusterClient, which holds one
// redis::Client per node and sends each command to the master that owns its key's slot.
//
// The slot map is learned with CLUSTER SLOTS from any node (the seeds first), and learned again
// when a node answers MOVED (the command is retried at once on the node named), every 30 s, and
// every second while a master is unreachable (a failover promotes a replica under another
// address). ASK (a slot being migrated) sends ASKING and the command to the node named, once,
// without changing the map; TRYAGAIN and CLUSTERDOWN are retried shortly. Every retry stays
// within the command's timeout_ms, counted from the first attempt: after that the caller gets
// Redis' last answer. Pipelining is per node: commands issued in one turn of the event loop to
// the same node share its write.
//
// What a command routes by: its first key (argv[1], or the first KEYS of EVAL/EVALSHA); commands
// without a key (PING, CLIENT, SCRIPT, CLUSTER, INFO, ...) go to any connected master. Every key
// of one script or transaction must share a slot (hash tags, docs/redis.md): Redis answers
// CROSSSLOT otherwise, which reaches the caller as the error it is. A transaction goes to the
// node of its first command's key; if Redis aborts it (EXECABORT: a MOVED or ASK while queueing),
// nothing ran, so the key's node is found again and the transaction sent there.
//
// Entry points: key_slot, ClusterClient (start, stop, connected, command, eval, transaction,
// masters, stats). redis::Client with Options::cluster set forwards to one (redis.hpp).
// Threading: the io_context's thread only, like redis::Client.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/redis/redis.hpp"

namespace postwarden::redis {

inline constexpr std::size_t cluster_slots = 16384;

// CRC16 (XMODEM) of the key, or of its hash tag (the text between the first '{' and the next '}'
// when that is not empty), modulo 16384: what CLUSTER KEYSLOT answers.
std::uint16_t key_slot(std::string_view key);

// The key a command routes by (see above), or nullptr.
const std::string* routing_key(const std::vector<std::string>& argv);
// The argv of a batch's first command: a transaction routes by its key.
std::vector<std::string> first_command(const Batch& batch);

class ClusterClient final : public Forward {
  public:
    // options.seeds (or options.address when there are none) are the nodes first asked for the
    // slot map; options.on_ready is called whenever a slot map is loaded or a master's
    // connection becomes ready, and every master of the map is connected.
    ClusterClient(boost::asio::io_context& io, Options options);
    ~ClusterClient();
    ClusterClient(const ClusterClient&) = delete;
    ClusterClient& operator=(const ClusterClient&) = delete;

    void start() override;
    void stop() override;
    // A slot map is loaded and every master is connected.
    bool connected() const override;
    void command(std::vector<std::string> argv, Callback done) override;
    void eval(const Script& script, std::vector<std::string> keys, std::vector<std::string> args,
              Callback done) override;
    void transaction(const Batch& commands, Callback done) override;
    Stats stats() const override;

    // The current masters, in slot order, each once: for what runs on every master (SCAN,
    // CLIENT TRACKING). A client stays valid as long as the ClusterClient.
    struct Master {
        Endpoint endpoint;
        Client* client;
    };
    std::vector<Master> masters() const;
    // Bumped whenever the set of masters changes.
    std::uint64_t topology() const;

  private:
    class Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace postwarden::redis
