// auth_load.cpp — closed-loop load generator for Dovecot's auth-policy protocol (docs/auth.md):
// C keep-alive HTTP/1.1 connections, each with one request in flight, for a bounded time.
// Reports requests/s and latency p50/p95/p99/max over the measured time (after one second of
// warm-up), errors (a status other than 200), and total= every reply. Loopback only.
//
//   auth_load --port P [--connections C] [--seconds S] [--api-key K]
//             [--mix allow:100,fail:0,success:0]
//
// Request kinds, bodies as Dovecot 2.3 sends them (its default auth_policy_request_attributes):
//   allow    ?command=allow for one of 10000 logins from one of 65536 client addresses
//   fail     ?command=report, success=false: a failed login, counted (addresses lock as they
//            reach [auth] ip_lockout and are then answered from their lock)
//   success  ?command=report, success=true: nothing to count
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
    unsigned short port = 10041;
    int connections = 64;
    double seconds = 10;
    std::string api_key;
    static constexpr int kinds = 3;
    int weights[kinds] = {100, 0, 0};  // allow, fail, success
};

std::string make_request(const Options& o, int kind, std::mt19937& rng) {
    const unsigned a = rng() % 65536, login = rng() % 10000;
    std::string body = R"({"device_id":"","login":"user)" + std::to_string(login) +
                       R"(@bench.example","protocol":"imap","pwhash":"3f2","remote":"10.9.)" +
                       std::to_string(a >> 8) + "." + std::to_string(a & 255) +
                       R"(","session_id":"bench)" + std::to_string(rng()) + "\"";
    if (kind > 0)
        body += kind == 1 ? R"(,"success":false,"policy_reject":false)"
                          : R"(,"success":true,"policy_reject":false)";
    body += "}";
    std::string r = std::string("POST /?command=") + (kind == 0 ? "allow" : "report") +
                    " HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: dovecot/auth-policy-client\r\n"
                    "Content-Type: application/json\r\n";
    if (!o.api_key.empty()) r += "X-API-Key: " + o.api_key + "\r\n";
    return r + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

class Runner;

class Connection : public std::enable_shared_from_this<Connection> {
  public:
    Connection(asio::io_context& io, Runner& runner) : socket_(io), runner_(runner) {}
    void start(const tcp::endpoint& ep);
    void send();

  private:
    void read();
    bool take_reply(int* status);
    tcp::socket socket_;
    Runner& runner_;
    std::string out_, in_;
    std::array<char, 8192> buf_;
    Clock::time_point sent_;
};

class Runner {
  public:
    Runner(asio::io_context& io, const Options& o) : io_(io), o_(o), rng_(42) {}
    std::string next() {
        int total = 0;
        for (int w : o_.weights)
            total += w;
        int pick = static_cast<int>(rng_() % static_cast<unsigned>(total)), kind = 0;
        while (pick >= o_.weights[kind])
            pick -= o_.weights[kind++];
        return make_request(o_, kind, rng_);
    }
    bool done(Clock::duration latency, int status) {
        if (measuring_)
            latencies_.push_back(static_cast<std::uint32_t>(
                std::chrono::duration_cast<std::chrono::microseconds>(latency).count()));
        if (status != 200) ++errors_;
        ++total_;
        return Clock::now() < end_;
    }
    void run() {
        tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), o_.port);
        end_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(o_.seconds + 1));
        for (int i = 0; i < o_.connections; ++i)
            std::make_shared<Connection>(io_, *this)->start(ep);
        asio::steady_timer warm(io_, std::chrono::seconds(1));
        warm.async_wait([this](auto) {
            measuring_ = true;
            started_ = Clock::now();
        });
        io_.run();
        double secs = std::chrono::duration<double>(Clock::now() - started_).count();
        std::sort(latencies_.begin(), latencies_.end());
        auto pct = [&](double p) -> double {
            if (latencies_.empty()) return 0;
            return latencies_[std::min(latencies_.size() - 1,
                                       static_cast<std::size_t>(p * latencies_.size()))] /
                   1000.0;
        };
        std::printf(
            "connections=%d seconds=%.1f requests=%zu rps=%.0f p50_ms=%.3f p95_ms=%.3f "
            "p99_ms=%.3f max_ms=%.3f errors=%lu total=%lu\n",
            o_.connections, secs, latencies_.size(), latencies_.size() / secs, pct(0.50), pct(0.95),
            pct(0.99), latencies_.empty() ? 0.0 : latencies_.back() / 1000.0, errors_, total_);
    }

  private:
    asio::io_context& io_;
    Options o_;
    std::mt19937 rng_;
    unsigned long errors_ = 0, total_ = 0;
    bool measuring_ = false;
    Clock::time_point end_, started_;
    std::vector<std::uint32_t> latencies_;
};

void Connection::start(const tcp::endpoint& ep) {
    socket_.async_connect(ep, [self = shared_from_this()](auto ec) {
        if (ec) {
            std::cerr << "connect: " << ec.message() << "\n";
            return;
        }
        self->socket_.set_option(tcp::no_delay(true));
        self->send();
    });
}

void Connection::send() {
    out_ = runner_.next();
    sent_ = Clock::now();
    asio::async_write(socket_, asio::buffer(out_), [self = shared_from_this()](auto ec, auto) {
        if (!ec) self->read();
    });
}

// One whole response at the front of in_ (headers and Content-Length bytes): its status.
bool Connection::take_reply(int* status) {
    auto end = in_.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    std::size_t length = 0;
    auto at = in_.find("Content-Length: ");
    if (at != std::string::npos && at < end) length = std::stoul(in_.substr(at + 16));
    if (in_.size() < end + 4 + length) return false;
    *status = std::atoi(in_.c_str() + 9);
    in_.erase(0, end + 4 + length);
    return true;
}

void Connection::read() {
    socket_.async_read_some(asio::buffer(buf_), [self = shared_from_this()](auto ec, auto n) {
        if (ec) return;
        self->in_.append(self->buf_.data(), n);
        int status = 0;
        if (!self->take_reply(&status)) return self->read();
        if (!self->runner_.done(Clock::now() - self->sent_, status)) return;
        self->send();
    });
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string a = argv[i], v = argv[i + 1];
        if (a == "--port")
            o.port = static_cast<unsigned short>(std::stoi(v));
        else if (a == "--connections")
            o.connections = std::stoi(v);
        else if (a == "--seconds")
            o.seconds = std::stod(v);
        else if (a == "--api-key")
            o.api_key = v;
        else if (a == "--mix") {
            const char* names[] = {"allow", "fail", "success"};
            for (int k = 0; k < Options::kinds; ++k) {
                auto at = v.find(std::string(names[k]) + ":");
                o.weights[k] = at == std::string::npos
                                   ? 0
                                   : std::stoi(v.substr(at + std::strlen(names[k]) + 1));
            }
        } else {
            std::cerr << "unknown option " << a << "\n";
            std::exit(2);
        }
    }
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    Options o = parse(argc, argv);
    asio::io_context io;
    Runner runner(io, o);
    runner.run();
}
