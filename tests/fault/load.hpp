// load.hpp — many policy connections at once, each sending a few requests at a time (pipelined)
// in a loop, recording every reply with its timing, so a fault test can say afterwards what
// was answered, how, and how fast, before, during and after a fault.
//
// Entry points: PolicyLoad (start in the constructor, stop, replies), LoadReply.
// Threading: one thread of its own drives every connection with poll(); replies() is read after
// stop(). Only 127.0.0.1 is used.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace postwarden::test {

using steady = std::chrono::steady_clock;

struct LoadReply {
    int connection = 0;
    bool outbound = false;  // a SASL user's RCPT (quota), else an inbound RCPT (greylisting)
    std::string login, instance;
    std::string action;  // the text after "action="
    steady::time_point sent;
    // When the daemon could start on it: it answers a connection's requests one at a time, so
    // the later of the send and the previous reply on the same connection.
    steady::time_point started;
    steady::time_point answered;
    long long service_ms() const {
        return std::chrono::duration_cast<std::chrono::milliseconds>(answered - started).count();
    }
};

class PolicyLoad {
  public:
    struct Options {
        int connections = 50;
        int depth = 3;                        // requests sent at once per connection
        std::chrono::milliseconds pause{30};  // between a batch's last reply and the next
        std::string login_prefix = "user";    // logins are <prefix><connection>@example.com
    };

    // Connects every client (throws when one cannot) and starts sending.
    PolicyLoad(unsigned short port, Options options);
    ~PolicyLoad();
    PolicyLoad(const PolicyLoad&) = delete;
    PolicyLoad& operator=(const PolicyLoad&) = delete;

    // Stops sending, waits up to `grace` for the replies still owed, and ends the thread.
    void stop(std::chrono::milliseconds grace = std::chrono::seconds(5));

    std::size_t answered() const { return answered_; }  // so far, from any thread
    // After stop(): every reply in the order received, the requests left unanswered, and the
    // connections the daemon closed.
    const std::vector<LoadReply>& replies() const { return replies_; }
    std::size_t unanswered() const { return unanswered_; }
    int closed_by_daemon() const { return closed_by_daemon_; }

  private:
    struct Connection;
    void run();

    unsigned short port_;
    Options options_;
    std::vector<std::unique_ptr<Connection>> connections_;
    std::vector<LoadReply> replies_;
    std::atomic<bool> stopping_{false};
    std::atomic<std::size_t> answered_{0};
    steady::time_point stop_deadline_;  // written before stopping_ is set
    std::size_t unanswered_ = 0;
    int closed_by_daemon_ = 0;
    std::thread thread_;
};

}  // namespace postwarden::test
