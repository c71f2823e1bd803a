// milter_client.hpp — test fixtures for postwarden-milter: the milter as a child process with a
// configuration written for the test, and a small blocking client of the milter protocol
// (version 6, as Postfix speaks it) that plays one SMTP transaction and collects the replies.
//
// Entry points: MilterProcess, MilterClient::run(Transaction), apply_modifications().
// Threading: test thread only. Only 127.0.0.1 is used.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "tests/fixtures/process.hpp"

namespace postwarden::test {

class MilterProcess {
  public:
    enum class Socket { inet, unix_socket };
    // `config` is postwarden.conf text; [milter] listen is added: a free port on 127.0.0.1, or a
    // unix socket in a directory of its own.
    explicit MilterProcess(const std::string& config, Socket socket = Socket::inet);
    unsigned short port() const { return port_; }  // 0 for a unix socket
    int connect() const;                           // a connected socket, or -1
    std::string log() { return daemon_.log(); }
    ChildProcess& process() { return daemon_.process(); }
    // The file it was started with; tests rewrite it and signal a reload.
    std::string config_path() const { return daemon_.dir() + "/postwarden.conf"; }

  private:
    TempDir socket_dir_{"postwarden-milter-sock"};
    unsigned short port_;
    std::string unix_path_;
    DaemonProcess daemon_;
};

using Header = std::pair<std::string, std::string>;  // name, value without the leading space

struct Transaction {
    std::string client_ip = "192.0.2.10";  // empty: no address (local submission)
    std::string helo = "mail.sender.test";
    std::string sender;
    std::vector<std::string> recipients = {"bob@rcpt.example"};
    std::string login;  // {auth_authen}
    std::vector<Header> headers;
    std::string body = "Hello.\r\n";
    // Called with each command's code ('C', 'H', 'M', 'R', 'L', 'N', 'B', 'E') before it is sent,
    // for tests that act in the middle of a transaction.
    std::function<void(char)> before;
};

struct Modification {
    char code;  // 'h' add, 'i' insert, 'm' change (empty value: delete), 'q' quarantine
    int index = 0;
    std::string name, value;
};

struct Outcome {
    char stage = 0;    // the command that got the final answer: 'M', 'R', 'N', 'E', ...
    char reply = 0;    // 'c', 'a', 'r', 't', 'y' (reply code), 'd', or 0 when the milter was silent
    std::string text;  // for 'y': "550 5.7.1 ..."
    std::vector<Modification> modifications;

    bool accepted() const { return reply == 'a' || reply == 'c'; }
    // The first header added or inserted with this name ("" if none).
    std::string added(const std::string& name) const;
    bool quarantined() const;
};

class MilterClient {
  public:
    explicit MilterClient(unsigned short port);
    explicit MilterClient(const MilterProcess& milter);
    ~MilterClient();
    MilterClient(const MilterClient&) = delete;
    MilterClient& operator=(const MilterClient&) = delete;

    Outcome run(const Transaction& t);
    // After run(): the protocol flags (SMFIP_*) the milter agreed to.
    unsigned long protocol() const { return protocol_; }

  private:
    void send(char command, const std::string& data);
    bool read_packet(char* code, std::string* data);
    bool step(char command, const std::string& data, Outcome* out);

    int fd_ = -1;
    unsigned long protocol_ = 0;  // the protocol flags the milter agreed to (SMFIP_*)
};

// The header list Postfix would end up with: deletions and insertions applied in order, with
// Postfix's numbering (the n-th field of that name, counted anew after each change).
std::vector<Header> apply_modifications(std::vector<Header> headers,
                                        const std::vector<Modification>& mods);

// A message as the signer sees it: "Name: value\r\n"... "\r\n" body.
std::string render(const std::vector<Header>& headers, const std::string& body);

}  // namespace postwarden::test
