// load.cpp — the load's poll() loop: send a batch on every idle connection, read replies, match
// them to the requests in order; see load.hpp.
#include "tests/fault/load.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <deque>
#include <stdexcept>

#include "tests/fixtures/policyd_process.hpp"

namespace postwarden::test {

struct PolicyLoad::Connection {
    int index = 0;
    int fd = -1;
    long sequence = 0;
    std::deque<LoadReply> waiting;  // sent, not yet answered, in order
    std::string buffer;
    steady::time_point next_send;
    steady::time_point last_answer;
    bool open = true;
    ~Connection() {
        if (fd >= 0) close(fd);
    }

    // Odd requests are a SASL user's RCPT (quota: one login per connection, one message per
    // request), even ones inbound RCPTs from the connection's own network (greylisting).
    std::string login_prefix;

    LoadReply next_request(std::string* text) {
        LoadReply r;
        r.connection = index;
        r.outbound = sequence % 2 == 1;
        auto n = std::to_string(sequence++);
        Attributes a;
        if (r.outbound) {
            r.login = login_prefix + std::to_string(index) + "@example.com";
            r.instance = "c" + std::to_string(index) + "m" + n;
            a = inbound("198.51.100.7", r.login, "r" + n + "@elsewhere.example");
            a["sasl_username"] = r.login;
            a["instance"] = r.instance;
        } else {
            a = inbound("192.0.2." + std::to_string(index % 250 + 1),
                        "s" + std::to_string(index) + "@sender.fault.test",
                        "rcpt" + std::to_string(sequence % 5) + "@example.net");
        }
        *text += format_request(a);
        return r;
    }
};

PolicyLoad::PolicyLoad(unsigned short port, Options options) : port_(port), options_(options) {
    auto now = steady::now();
    for (int i = 0; i < options_.connections; ++i) {
        auto c = std::make_unique<Connection>();
        c->index = i;
        c->login_prefix = options_.login_prefix;
        c->fd = connect_loopback(port_);
        if (c->fd < 0) throw std::runtime_error("load: cannot connect to policyd");
        // spread the first batches over one pause, so the connections do not move in lockstep
        c->next_send = now + options_.pause * i / options_.connections;
        connections_.push_back(std::move(c));
    }
    thread_ = std::thread([this] { run(); });
}

PolicyLoad::~PolicyLoad() {
    stop();
}

void PolicyLoad::stop(std::chrono::milliseconds grace) {
    if (!thread_.joinable()) return;
    stop_deadline_ = steady::now() + grace;
    stopping_ = true;
    thread_.join();
    for (auto& c : connections_)
        unanswered_ += c->waiting.size();
}

void PolicyLoad::run() {
    std::vector<pollfd> fds;
    for (;;) {
        auto now = steady::now();
        bool stopping = stopping_;
        bool owed = false;
        fds.clear();
        for (auto& c : connections_) {
            if (!c->open) continue;
            if (!stopping && c->waiting.empty() && now >= c->next_send) {
                std::string batch;
                for (int k = 0; k < options_.depth; ++k) {
                    c->waiting.push_back(c->next_request(&batch));
                    c->waiting.back().sent = now;
                }
                if (::send(c->fd, batch.data(), batch.size(), MSG_NOSIGNAL) !=
                    static_cast<ssize_t>(batch.size()))
                    c->open = false;
            }
            owed = owed || !c->waiting.empty();
            fds.push_back({c->fd, POLLIN, 0});
        }
        if (stopping && (!owed || now >= stop_deadline_)) return;
        poll(fds.data(), fds.size(), 5);
        now = steady::now();
        for (auto& c : connections_) {
            if (!c->open) continue;
            char chunk[8192];
            ssize_t n = recv(c->fd, chunk, sizeof chunk, MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                c->open = false;
                ++closed_by_daemon_;
                continue;
            }
            if (n < 0) continue;
            c->buffer.append(chunk, static_cast<std::size_t>(n));
            for (auto end = c->buffer.find("\n\n"); end != std::string::npos;
                 end = c->buffer.find("\n\n")) {
                std::string text = c->buffer.substr(0, end);
                c->buffer.erase(0, end + 2);
                if (c->waiting.empty()) continue;  // a reply nobody asked for: shows as a count
                LoadReply r = std::move(c->waiting.front());
                c->waiting.pop_front();
                r.action = text.rfind("action=", 0) == 0 ? text.substr(7) : "?" + text;
                r.started = std::max(r.sent, c->last_answer);
                r.answered = c->last_answer = now;
                replies_.push_back(std::move(r));
                ++answered_;
                if (c->waiting.empty()) c->next_send = now + options_.pause;
            }
        }
    }
}

}  // namespace postwarden::test
