// policy_load.cpp — closed-loop load generator for the Postfix policy protocol: C connections,
// each with one request in flight, for a bounded time, with a configurable mix of requests.
// Reports requests/s and latency p50/p95/p99/max over the measured time (after one second of
// warm-up), and total= every reply received including the warm-up. Loopback only.
//
//   policy_load --port P [--connections C] [--seconds S]
//               [--mix new:0,known:100,auth:0,blocked:0,new-client:0,submission:0]
//               [--prepass SECONDS]
//
// Request kinds (the bench script prepares Redis to match):
//   new      a triplet never seen: unique sender per request (greylisted)
//   known    one of 1000 triplets from 1000 /24s that passed greylisting (see --prepass)
//   auth     an authenticated (sasl_username) user under quota, outbound
//   blocked  a sender whose domain is in block:domain (bench-blocked.example)
//   new-client  a new triplet from a client address never seen (10.x.y.z): as new, but no SPF
//            result can be reused (new's 250 clients share one per client, as a mailing
//            list's VERP senders do), so every request evaluates the sender's SPF record
//   submission  an authenticated message as Postfix sends it: auth's RCPT, then, on the same
//            connection, END-OF-MESSAGE with recipient_count=1, which commits the reservation;
//            two requests, each counted as one
// --prepass D sends every known triplet, waits D seconds (the greylist delay), sends them again,
// so they are "known" when the measurement starts.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
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
#include <thread>
#include <utility>
#include <vector>

namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int known_pool = 1000;

struct Options {
    unsigned short port = 10040;
    int connections = 64;
    double seconds = 10;
    static constexpr int kinds = 6;
    int weights[kinds] = {0, 100, 0, 0, 0, 0};  // new, known, auth, blocked, new-client, submission
    double prepass = -1;
};

std::string request(const std::string& client, const std::string& sender, const std::string& rcpt,
                    const std::string& login, const std::string& instance = "bench.1",
                    const std::string& state = "RCPT") {
    std::string r = "request=smtpd_access_policy\nprotocol_state=" + state +
                    "\nprotocol_name=ESMTP\n"
                    "client_address=" +
                    client +
                    "\nclient_name=mx.bench.example\nhelo_name=mx.bench.example\n"
                    "queue_id=BENCH\ninstance=" +
                    instance + "\nsender=" + sender + "\nrecipient=" + rcpt + "\n";
    if (!login.empty()) r += "sasl_username=" + login + "\n";
    return r + "\n";
}

std::string known_request(int k) {
    return request("198.18." + std::to_string(k / 250) + "." + std::to_string(k % 250 + 1),
                   "sender" + std::to_string(k) + "@bench-known.example", "rcpt@bench.example", "");
}

// Senders of new triplets carry this run's start time: a run after another on the same Redis
// must meet triplets never seen, not the earlier run's (which would be retries, and pass).
const std::string& run_tag() {
    static const std::string tag =
        std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count());
    return tag;
}

std::string new_sender(unsigned long counter) {
    return "new" + std::to_string(counter) + "." + run_tag() + "@bench-new.example";
}

// An authenticated user's RCPT: each a new message (instance) of one of 100 users, so a new
// reservation, never a replay of an earlier one (quota.lua answers a replay in fewer steps).
// With follow set, that message's END-OF-MESSAGE too (recipient_count=1).
// A submission's users are not auth's: auth never commits, so its users' held sets grow by
// thousands a second, far past anything a real user with a limit has pending.
std::string auth_request(unsigned long counter, std::mt19937& rng, std::string* follow = nullptr) {
    const auto user = (follow ? "sub" : "user") + std::to_string(rng() % 100) + "@bench.example";
    const auto instance = "bench." + run_tag() + "." + std::to_string(counter);
    if (follow) {
        *follow = request("127.0.0.1", user, "", user, instance, "END-OF-MESSAGE");
        follow->insert(follow->size() - 1, "recipient_count=1\n");
    }
    return request("127.0.0.1", user, "friend@elsewhere.example", user, instance);
}

// The request of a kind; a submission leaves its second request in follow.
std::string make_request(int kind, unsigned long counter, std::mt19937& rng, std::string& follow) {
    switch (kind) {
        case 0:
            return request("198.51.100." + std::to_string(counter % 250 + 1), new_sender(counter),
                           "rcpt@bench.example", "");
        case 1:
            return known_request(static_cast<int>(rng() % known_pool));
        case 2:
            return auth_request(counter, rng);
        case 3:
            return request("203.0.113.9", "x@bench-blocked.example", "rcpt@bench.example", "");
        case 5:
            return auth_request(counter, rng, &follow);
        default: {
            // Where this run starts in 10/8 moves with the tag too, so policyd has no SPF result
            // kept for the client from an earlier run.
            static const unsigned long start = std::stoul(run_tag().substr(run_tag().size() - 7));
            const unsigned long a = (start + counter) & 0xffffff;
            return request("10." + std::to_string(a >> 16) + "." + std::to_string((a >> 8) & 255) +
                               "." + std::to_string(a & 255),
                           new_sender(counter), "rcpt@bench.example", "");
        }
    }
}

class Runner;

class Connection : public std::enable_shared_from_this<Connection> {
  public:
    Connection(asio::io_context& io, Runner& runner) : socket_(io), runner_(runner) {}
    void start(const tcp::endpoint& ep);
    void send(std::string text);

  private:
    void read();
    tcp::socket socket_;
    Runner& runner_;
    std::string out_;
    std::string follow_;  // the request to send after this reply (a submission's second)
    std::string in_;
    std::array<char, 4096> buf_;
    Clock::time_point sent_;
};

class Runner {
  public:
    Runner(asio::io_context& io, const Options& o) : io_(io), o_(o), rng_(42) {}
    std::string next(std::string& follow) {
        int total = 0;
        for (int w : o_.weights)
            total += w;
        int pick = static_cast<int>(rng_() % static_cast<unsigned>(total)), kind = 0;
        while (pick >= o_.weights[kind])
            pick -= o_.weights[kind++];
        return make_request(kind, counter_++, rng_, follow);
    }
    // Called with each reply; returns false when the connection should stop.
    bool done(Clock::duration latency, const std::string& reply) {
        if (measuring_)
            latencies_.push_back(static_cast<std::uint32_t>(
                std::chrono::duration_cast<std::chrono::microseconds>(latency).count()));
        if (reply.rfind("action=", 0) != 0) ++errors_;
        ++total_;
        return Clock::now() < end_;
    }
    void run() {
        tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), o_.port);
        end_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(o_.seconds + 1));
        for (int i = 0; i < o_.connections; ++i)
            std::make_shared<Connection>(io_, *this)->start(ep);
        // one second of warm-up, then measure
        asio::steady_timer warm(io_, std::chrono::seconds(1));
        warm.async_wait([this](auto) {
            measuring_ = true;
            started_ = Clock::now();
        });
        io_.run();
        report();
    }
    void report() {
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
    unsigned long counter_ = 0, errors_ = 0, total_ = 0;
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
        self->send(self->runner_.next(self->follow_));
    });
}

void Connection::send(std::string text) {
    out_ = std::move(text);
    sent_ = Clock::now();
    asio::async_write(socket_, asio::buffer(out_), [self = shared_from_this()](auto ec, auto) {
        if (!ec) self->read();
    });
}

void Connection::read() {
    socket_.async_read_some(asio::buffer(buf_), [self = shared_from_this()](auto ec, auto n) {
        if (ec) return;
        self->in_.append(self->buf_.data(), n);
        auto end = self->in_.find("\n\n");
        if (end == std::string::npos) return self->read();
        std::string reply = self->in_.substr(0, end);
        self->in_.erase(0, end + 2);
        if (!self->runner_.done(Clock::now() - self->sent_, reply) && self->follow_.empty()) return;
        std::string text = self->follow_.empty() ? self->runner_.next(self->follow_)
                                                 : std::exchange(self->follow_, {});
        self->send(std::move(text));
    });
}

// Sends each known triplet once on one blocking connection.
void prepass_round(unsigned short port) {
    asio::io_context io;
    tcp::socket s(io);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    asio::streambuf buf;
    for (int k = 0; k < known_pool; ++k) {
        asio::write(s, asio::buffer(known_request(k)));
        asio::read_until(s, buf, "\n\n");
        buf.consume(buf.size());
    }
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
        else if (a == "--prepass")
            o.prepass = std::stod(v);
        else if (a == "--mix") {
            const char* names[] = {"new", "known", "auth", "blocked", "new-client", "submission"};
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
    if (o.prepass >= 0) {
        prepass_round(o.port);
        std::this_thread::sleep_for(std::chrono::duration<double>(o.prepass));
        prepass_round(o.port);
    }
    asio::io_context io;
    Runner runner(io, o);
    runner.run();
}
