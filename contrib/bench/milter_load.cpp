// milter_load.cpp — closed-loop load generator for the milter protocol (version 6, as Postfix
// speaks it): S sessions, each with one message in flight, for a bounded time, replaying a corpus
// of messages. Reports messages/s and latency p50/p95/p99/max over the measured time (after one
// second of warm-up), and the outcomes. Loopback and unix sockets only.
//
//   milter_load --milter ADDR [--milter ADDR ...] --corpus DIR [--sessions S] [--seconds T]
//               [--per-connection K] [--postfix-writes] [--verbose]
//
// ADDR is inet:PORT@127.0.0.1 or unix:/path (libmilter's syntax, as in main.cf). The corpus
// directory holds manifest.tsv, one message a line: file, client address, HELO name, MAIL FROM,
// RCPT TO (tab separated), and the files, RFC 5322 with CRLF line ends (milter_corpus.py).
//
// One message is what Postfix' smtpd does for one SMTP session with smtp-source's defaults: a new
// connection to each milter, option negotiation, then connect, helo, mail, rcpt, data, every
// header, end of headers, the body in 64 KB chunks, end of message, quit. --per-connection K
// keeps the milter connections for K messages (like smtp-source -d). The latency of a message is
// the whole of it, connection set-up included. Each event (macros and command) goes out in one
// write on a TCP_NODELAY socket. --postfix-writes leaves Nagle's algorithm on, as Postfix does on
// its milter sockets; either way the macros of an event the milter asked to skip (Postfix sends
// them regardless) go out alone, as they do when smtpd hands the connection to cleanup.
//
// Several --milter options chain them as Postfix' smtpd_milters does: each envelope event goes to
// each milter in turn; the content (headers, body, end of message) goes to the first milter, its
// header changes are applied (add, insert, change, delete), and the edited headers go to the next,
// so OpenDMARC sees OpenDKIM's Authentication-Results as it does behind Postfix. A reject,
// tempfail or reply code ends the message; accept skips that milter for the rest of it.
//
// Threading: one thread, Asio C++20 coroutines; one coroutine per session.
// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using Clock = std::chrono::steady_clock;

namespace {

// Protocol flags (libmilter/mfdef.h), spelled here so the tool needs no libmilter headers.
constexpr std::uint32_t no_connect = 0x1, no_helo = 0x2, no_mail = 0x4, no_rcpt = 0x8,
                        no_body = 0x10, no_headers = 0x20, no_eoh = 0x40, nr_header = 0x80,
                        no_data = 0x200, nr_connect = 0x1000, nr_helo = 0x2000, nr_mail = 0x4000,
                        nr_rcpt = 0x8000, nr_data = 0x10000, nr_eoh = 0x40000, nr_body = 0x80000,
                        leading_space = 0x100000;
// What Postfix 3.7 offers: every step may be skipped or left unanswered, and header values
// may keep their leading space.
constexpr std::uint32_t offered_protocol = 0x1fffff;
constexpr std::uint32_t offered_actions = 0x1ff;

struct Message {
    std::string client, helo, sender, rcpt;
    std::vector<std::pair<std::string, std::string>> headers;  // value without the first space
    std::string body;
};

struct Options {
    std::vector<std::string> milters;
    std::string corpus;
    int sessions = 8;
    double seconds = 10;
    int per_connection = 1;
    bool verbose = false;
    bool postfix_writes = false;
};

std::string u32(std::uint32_t v) {
    std::string s(4, '\0');
    for (int i = 0; i < 4; ++i)
        s[i] = static_cast<char>((v >> (24 - 8 * i)) & 0xff);
    return s;
}

std::uint32_t get_u32(const std::string& s, std::size_t at) {
    std::uint32_t v = 0;
    for (std::size_t i = at; i < at + 4 && i < s.size(); ++i)
        v = (v << 8) | static_cast<unsigned char>(s[i]);
    return v;
}

std::string packet(char command, const std::string& data) {
    return u32(static_cast<std::uint32_t>(data.size() + 1)) + command + data;
}

std::string z(const std::string& s) {
    return s + '\0';
}

std::vector<std::string> strings_of(const std::string& data, std::size_t from) {
    std::vector<std::string> out;
    while (from < data.size()) {
        auto end = std::min(data.find('\0', from), data.size());
        out.push_back(data.substr(from, end - from));
        from = end + 1;
    }
    return out;
}

bool iequal(const std::string& a, const std::string& b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

// ---- corpus ----------------------------------------------------------------------------------

Message parse_message(const std::string& text) {
    Message m;
    auto end = text.find("\r\n\r\n");
    std::string head = text.substr(0, end == std::string::npos ? text.size() : end + 2);
    m.body = end == std::string::npos ? "" : text.substr(end + 4);
    std::size_t pos = 0;
    while (pos < head.size()) {
        auto eol = head.find("\r\n", pos);
        std::string line = head.substr(pos, eol - pos);
        pos = eol + 2;
        if (!line.empty() && (line[0] == ' ' || line[0] == '\t') && !m.headers.empty()) {
            // Postfix sends a folded field as one value with "\n" where the CRLF was.
            m.headers.back().second += "\n" + line;
            continue;
        }
        auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string value = line.substr(colon + 1);
        if (!value.empty() && value[0] == ' ') value.erase(0, 1);
        m.headers.emplace_back(line.substr(0, colon), value);
    }
    return m;
}

std::vector<Message> load_corpus(const std::string& dir) {
    std::ifstream manifest(dir + "/manifest.tsv");
    if (!manifest) throw std::runtime_error("cannot read " + dir + "/manifest.tsv");
    std::vector<Message> out;
    std::string line;
    while (std::getline(manifest, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::vector<std::string> f;
        std::stringstream ss(line);
        for (std::string field; std::getline(ss, field, '\t');)
            f.push_back(field);
        if (f.size() != 5) throw std::runtime_error("manifest.tsv: 5 fields expected: " + line);
        std::ifstream file(dir + "/" + f[0], std::ios::binary);
        if (!file) throw std::runtime_error("cannot read " + dir + "/" + f[0]);
        std::stringstream text;
        text << file.rdbuf();
        Message m = parse_message(text.str());
        m.client = f[1], m.helo = f[2], m.sender = f[3], m.rcpt = f[4];
        out.push_back(std::move(m));
    }
    if (out.empty()) throw std::runtime_error(dir + ": empty corpus");
    return out;
}

// ---- one milter connection -------------------------------------------------------------------

// A TCP or unix stream socket behind one interface.
class Stream {
  public:
    Stream(asio::io_context& io, bool postfix_writes)
        : tcp_(io), unix_(io), postfix_writes_(postfix_writes) {}
    awaitable<void> connect(const std::string& address) {
        if (address.rfind("unix:", 0) == 0) {
            is_unix_ = true;
            co_await unix_.async_connect(address.substr(5), use_awaitable);
            co_return;
        }
        // inet:PORT@HOST
        auto at = address.find('@');
        auto port = static_cast<unsigned short>(std::stoi(address.substr(5, at - 5)));
        auto host = at == std::string::npos ? "127.0.0.1" : address.substr(at + 1);
        asio::ip::tcp::endpoint ep(asio::ip::make_address(host), port);
        co_await tcp_.async_connect(ep, use_awaitable);
        if (!postfix_writes_) tcp_.set_option(asio::ip::tcp::no_delay(true));
    }
    awaitable<void> write(const std::string& data) {
        if (is_unix_)
            co_await asio::async_write(unix_, asio::buffer(data), use_awaitable);
        else
            co_await asio::async_write(tcp_, asio::buffer(data), use_awaitable);
    }
    awaitable<void> read(char* data, std::size_t n) {
        if (is_unix_)
            co_await asio::async_read(unix_, asio::buffer(data, n), use_awaitable);
        else
            co_await asio::async_read(tcp_, asio::buffer(data, n), use_awaitable);
    }
    void close() {
        boost::system::error_code ec;
        tcp_.close(ec);
        unix_.close(ec);
    }

  private:
    asio::ip::tcp::socket tcp_;
    asio::local::stream_protocol::socket unix_;
    bool is_unix_ = false;
    bool postfix_writes_;
};

struct Reply {
    char code = 0;
    std::string data;
};

struct Tally {
    unsigned long accepted = 0, rejected = 0, tempfailed = 0, discarded = 0, errors = 0;
    unsigned long headers_added = 0, headers_changed = 0, quarantined = 0;
};

class MilterConnection {
  public:
    MilterConnection(asio::io_context& io, std::string address, bool postfix_writes)
        : stream_(io, postfix_writes), address_(std::move(address)) {}

    awaitable<void> open() {
        co_await stream_.connect(address_);
        co_await stream_.write(packet('O', u32(6) + u32(offered_actions) + u32(offered_protocol)));
        Reply r = co_await read();
        if (r.code != 'O' || r.data.size() < 12)
            throw std::runtime_error(address_ + ": bad option negotiation reply");
        protocol_ = get_u32(r.data, 8);
    }
    void close() { stream_.close(); }
    awaitable<void> quit() { co_await stream_.write(packet('Q', "")); }

    // Sends macros (if any) and the command in one write; reads the replies up to the final one
    // unless the milter asked for none. Returns the final reply ('c' when none is expected).
    awaitable<Reply> event(char command, const std::string& data, std::uint32_t skip_flag,
                           std::uint32_t no_reply_flag, const std::string& macros = "",
                           std::vector<Reply>* modifications = nullptr) {
        std::string out;
        if (!macros.empty()) out = packet('D', std::string(1, command) + macros);
        if (skip_flag && (protocol_ & skip_flag)) {
            if (!out.empty()) co_await stream_.write(out);
            co_return Reply{'c', ""};
        }
        out += packet(command, data);
        co_await stream_.write(out);
        if (no_reply_flag && (protocol_ & no_reply_flag)) co_return Reply{'c', ""};
        for (;;) {
            Reply r = co_await read();
            if (r.code == 'p') continue;  // progress
            if (std::string("hime+-be2q").find(r.code) != std::string::npos) {
                if (modifications) modifications->push_back(std::move(r));
                continue;
            }
            co_return r;
        }
    }
    std::uint32_t protocol() const { return protocol_; }

  private:
    awaitable<Reply> read() {
        char head[4];
        co_await stream_.read(head, 4);
        std::uint32_t length = get_u32(std::string(head, 4), 0);
        if (length == 0 || length > (1u << 24)) throw std::runtime_error("bad packet length");
        std::string body(length, '\0');
        co_await stream_.read(body.data(), length);
        co_return Reply{body[0], body.substr(1)};
    }
    Stream stream_;
    std::string address_;
    std::uint32_t protocol_ = 0;
};

// Applies one milter's header changes to the header list (Postfix' numbering: index n is the n-th
// field of that name; insert index 0 is the top).
void apply(std::vector<std::pair<std::string, std::string>>& headers, const Reply& m,
           Tally& tally) {
    if (m.code == 'q') {
        ++tally.quarantined;
        return;
    }
    if (m.code != 'h' && m.code != 'i' && m.code != 'm') return;
    std::size_t at = m.code == 'h' ? 0 : 4;
    auto s = strings_of(m.data, at);
    if (s.size() < 2) return;
    std::string value = s[1];
    if (!value.empty() && value[0] == ' ') value.erase(0, 1);
    if (m.code == 'h') {
        headers.emplace_back(s[0], value);
        ++tally.headers_added;
    } else if (m.code == 'i') {
        auto index = std::min<std::size_t>(get_u32(m.data, 0), headers.size());
        headers.insert(headers.begin() + static_cast<std::ptrdiff_t>(index), {s[0], value});
        ++tally.headers_added;
    } else {
        std::uint32_t index = std::max<std::uint32_t>(1, get_u32(m.data, 0)), seen = 0;
        for (auto it = headers.begin(); it != headers.end(); ++it) {
            if (!iequal(it->first, s[0]) || ++seen != index) continue;
            if (value.empty())
                headers.erase(it);
            else
                it->second = value;
            ++tally.headers_changed;
            break;
        }
    }
}

// ---- the runner ------------------------------------------------------------------------------

class Runner {
  public:
    Runner(asio::io_context& io, Options o, std::vector<Message> corpus)
        : io_(io), o_(std::move(o)), corpus_(std::move(corpus)) {}

    void run() {
        start_ = Clock::now();
        end_ = start_ + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(o_.seconds + 1));
        for (int i = 0; i < o_.sessions; ++i)
            asio::co_spawn(io_, session(i), [this](std::exception_ptr e) {
                if (!e) return;
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& x) {
                    std::cerr << "session: " << x.what() << "\n";
                    ++tally_.errors;
                }
            });
        io_.run();
        report();
    }

  private:
    bool measuring(Clock::time_point t) const { return t >= start_ + std::chrono::seconds(1); }

    awaitable<void> session(int id) {
        std::size_t next = static_cast<std::size_t>(id) * 7919;
        unsigned long serial = 0;
        while (Clock::now() < end_) {
            std::vector<std::unique_ptr<MilterConnection>> conns;
            auto begin = Clock::now();
            for (const auto& a : o_.milters) {
                conns.push_back(std::make_unique<MilterConnection>(io_, a, o_.postfix_writes));
                co_await conns.back()->open();
            }
            for (int k = 0; k < o_.per_connection && Clock::now() < end_; ++k) {
                const Message& m = corpus_[next++ % corpus_.size()];
                std::string queue_id = "B" + std::to_string(id) + "Q" + std::to_string(serial++);
                bool ok = co_await message(conns, m, queue_id, k == 0);
                auto done = Clock::now();
                if (measuring(begin) && done < end_) {
                    latencies_.push_back(static_cast<std::uint32_t>(
                        std::chrono::duration_cast<std::chrono::microseconds>(done - begin)
                            .count()));
                    if (!ok) ++tally_.errors;
                }
                begin = done;
            }
            for (auto& c : conns) {
                co_await c->quit();
                c->close();
            }
        }
    }

    // One message through every milter; false when a milter answered something unexpected.
    awaitable<bool> message(std::vector<std::unique_ptr<MilterConnection>>& conns, const Message& m,
                            const std::string& queue_id, bool first) {
        std::vector<bool> active(conns.size(), true);
        auto envelope = [&](char cmd, const std::string& data, std::uint32_t skip, std::uint32_t nr,
                            const std::string& macros) -> awaitable<char> {
            for (std::size_t i = 0; i < conns.size(); ++i) {
                if (!active[i]) continue;
                Reply r = co_await conns[i]->event(cmd, data, skip, nr, macros);
                if (r.code == 'a') active[i] = false;
                if (r.code == 'r' || r.code == 't' || r.code == 'y' || r.code == 'd')
                    co_return r.code;
            }
            co_return 'c';
        };
        char verdict = 'c';
        if (first) {
            std::string connect = z(m.helo) + '4' + std::string("\0\x19", 2) + z(m.client);
            std::string macros = z("j") + z("mx.bench.test") + z("{daemon_name}") + z("bench") +
                                 z("{client_addr}") + z(m.client) + z("_") +
                                 z(m.helo + " [" + m.client + "]");
            verdict = co_await envelope('C', connect, no_connect, nr_connect, macros);
            if (verdict == 'c') verdict = co_await envelope('H', z(m.helo), no_helo, nr_helo, "");
        }
        if (verdict == 'c')
            verdict = co_await envelope('M', z("<" + m.sender + ">"), no_mail, nr_mail,
                                        z("i") + z(queue_id) + z("{mail_addr}") + z(m.sender));
        if (verdict == 'c')
            verdict = co_await envelope('R', z("<" + m.rcpt + ">"), no_rcpt, nr_rcpt,
                                        z("{rcpt_addr}") + z(m.rcpt));
        // Postfix sends the DATA macros (milter_data_macros = i) even to a milter that skips DATA.
        if (verdict == 'c')
            verdict = co_await envelope('T', "", no_data, nr_data, z("i") + z(queue_id));
        auto headers = m.headers;
        for (std::size_t i = 0; i < conns.size() && (verdict == 'c' || verdict == 'a'); ++i) {
            if (!active[i]) continue;
            // accept ends the message for that milter only; the next one still gets it
            verdict = co_await content(*conns[i], headers, m.body, queue_id);
        }
        switch (verdict) {
            case 'c':
            case 'a':
                ++tally_.accepted;
                break;
            case 'r':
            case 'y':
                ++tally_.rejected;
                break;
            case 't':
                ++tally_.tempfailed;
                break;
            case 'd':
                ++tally_.discarded;
                break;
            default:
                co_return false;
        }
        if (o_.verbose && !printed_++) {
            for (const auto& h : headers)
                std::cerr << h.first << ": " << h.second << "\n";
            std::cerr << "-- verdict " << verdict << "\n";
        }
        co_return true;
    }

    // Headers, body and end of message to one milter; applies its header changes to `headers`.
    awaitable<char> content(MilterConnection& c,
                            std::vector<std::pair<std::string, std::string>>& headers,
                            const std::string& body, const std::string& queue_id) {
        bool space = c.protocol() & leading_space;
        std::vector<Reply> mods;
        for (const auto& h : headers) {
            Reply r = co_await c.event('L', z(h.first) + z((space ? " " : "") + h.second),
                                       no_headers, nr_header);
            if (r.code != 'c') co_return r.code;
        }
        Reply r = co_await c.event('N', "", no_eoh, nr_eoh, z("i") + z(queue_id));
        if (r.code != 'c') co_return r.code;
        for (std::size_t at = 0; at < body.size(); at += 65535) {
            r = co_await c.event('B', body.substr(at, 65535), no_body, nr_body);
            if (r.code != 'c') co_return r.code;
        }
        r = co_await c.event('E', "", 0, 0, z("i") + z(queue_id), &mods);
        for (const auto& m : mods)
            apply(headers, m, tally_);
        co_return r.code;
    }

    void report() {
        double secs = o_.seconds;
        std::sort(latencies_.begin(), latencies_.end());
        auto pct = [&](double p) -> double {
            if (latencies_.empty()) return 0;
            return latencies_[std::min(latencies_.size() - 1,
                                       static_cast<std::size_t>(p * latencies_.size()))] /
                   1000.0;
        };
        std::printf(
            "sessions=%d seconds=%.1f messages=%zu mps=%.1f p50_ms=%.3f p95_ms=%.3f "
            "p99_ms=%.3f max_ms=%.3f accepted=%lu rejected=%lu tempfailed=%lu errors=%lu "
            "headers_added=%lu headers_changed=%lu quarantined=%lu\n",
            o_.sessions, secs, latencies_.size(), latencies_.size() / secs, pct(0.50), pct(0.95),
            pct(0.99), latencies_.empty() ? 0.0 : latencies_.back() / 1000.0, tally_.accepted,
            tally_.rejected, tally_.tempfailed, tally_.errors, tally_.headers_added,
            tally_.headers_changed, tally_.quarantined);
    }

    asio::io_context& io_;
    Options o_;
    std::vector<Message> corpus_;
    Clock::time_point start_, end_;
    std::vector<std::uint32_t> latencies_;
    Tally tally_;
    int printed_ = 0;
};

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--verbose" || a == "--postfix-writes") {
            (a == "--verbose" ? o.verbose : o.postfix_writes) = true;
            continue;
        }
        if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
        std::string v = argv[++i];
        if (a == "--milter")
            o.milters.push_back(v);
        else if (a == "--corpus")
            o.corpus = v;
        else if (a == "--sessions")
            o.sessions = std::stoi(v);
        else if (a == "--seconds")
            o.seconds = std::stod(v);
        else if (a == "--per-connection")
            o.per_connection = std::max(1, std::stoi(v));
        else
            throw std::runtime_error("unknown option " + a);
    }
    for (const auto& m : o.milters)
        if (m.rfind("unix:", 0) != 0 && m.rfind("inet:", 0) != 0)
            throw std::runtime_error("--milter " + m + ": inet:PORT@HOST or unix:/path");
    if (o.milters.empty() || o.corpus.empty())
        throw std::runtime_error(
            "usage: milter_load --milter ADDR... --corpus DIR [--sessions S] "
            "[--seconds T] [--per-connection K] [--postfix-writes] "
            "[--verbose]");
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        Options o = parse(argc, argv);
        auto corpus = load_corpus(o.corpus);
        asio::io_context io;
        Runner(io, std::move(o), std::move(corpus)).run();
    } catch (const std::exception& e) {
        std::cerr << "milter_load: " << e.what() << "\n";
        return 2;
    }
}
