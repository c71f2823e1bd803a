// raw_null_milter.cpp — a milter that does no work and uses no libmilter: one thread, one epoll
// loop, the Sendmail milter protocol (version 6, as Postfix speaks it) parsed here. It answers
// exactly as null_milter.cpp (libmilter) does, so that behind Postfix the two tell libmilter's
// share (a thread per connection, its worker pool, its allocations) apart from Postfix's own work
// for any milter (docs/benchmarks.md, Milter):
//   - option negotiation: version min(MTA's, 6), actions SMFIF_ADDHDRS if offered, protocol
//     SMFIP_NR_HDR | SMFIP_NR_BODY as far as offered — byte for byte libmilter's reply to
//     null_milter's negotiate callback;
//   - connect, helo, mail, rcpt, data, unknown, end of headers: "continue"; header fields and body
//     chunks: "continue" unless no reply was agreed; macros and abort: no reply; end of message:
//     "accept"; quit: close; quit-new-connection: back to the start of an SMTP session.
// Packets are at most 1 MB (a larger length, or zero, closes the connection); a connection holds
// at most one packet and a few replies in memory.
//
//   raw_null_milter unix:/path      (or inet:PORT@127.0.0.1; runs until SIGTERM or SIGINT)
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

// libmilter/mfdef.h, spelled here so that nothing of libmilter is needed.
constexpr std::uint32_t smfif_addhdrs = 0x1;
constexpr std::uint32_t smfip_nr_hdr = 0x80, smfip_nr_body = 0x80000;
constexpr std::uint32_t max_version = 6;
constexpr std::size_t max_packet = 1 << 20;  // length field: command byte + data

volatile sig_atomic_t stop = 0;
void on_signal(int) {
    stop = 1;
}

std::uint32_t get_u32(const unsigned char* p) {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
           std::uint32_t{p[3]};
}

void put_u32(std::string& out, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8)
        out.push_back(static_cast<char>((v >> shift) & 0xff));
}

struct Connection {
    int fd = -1;
    std::vector<unsigned char> partial;  // the start of a packet not yet whole
    std::string out;                     // replies not yet written
    std::uint32_t protocol = 0;          // the no-reply flags agreed
    bool want_out = false;
};

enum class Next { more, quit, error };

class Server {
  public:
    explicit Server(int listener) : listener_(listener) {}

    int run() {
        epoll_ = epoll_create1(EPOLL_CLOEXEC);
        if (epoll_ < 0) return fail("epoll_create1");
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = nullptr;  // the listener
        if (epoll_ctl(epoll_, EPOLL_CTL_ADD, listener_, &ev) < 0) return fail("epoll_ctl");
        std::vector<epoll_event> events(256);
        while (!stop) {
            int n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), -1);
            if (n < 0) {
                if (errno == EINTR) continue;
                return fail("epoll_wait");
            }
            for (int i = 0; i < n; ++i) {
                auto* c = static_cast<Connection*>(events[i].data.ptr);
                if (!c) {
                    accept_all();
                    continue;
                }
                bool alive = true;
                if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) alive = on_readable(*c);
                if (alive && (events[i].events & EPOLLOUT)) alive = flush(*c);
                if (!alive) close_connection(c);
            }
        }
        return 0;
    }

  private:
    static int fail(const char* what) {
        std::fprintf(stderr, "raw_null_milter: %s: %s\n", what, std::strerror(errno));
        return 1;
    }

    void accept_all() {
        for (;;) {
            int fd = accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                    errno != ECONNABORTED)
                    std::fprintf(stderr, "raw_null_milter: accept: %s\n", std::strerror(errno));
                return;
            }
            auto c = std::make_unique<Connection>();
            c->fd = fd;
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.ptr = c.get();
            if (epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) < 0) {
                ::close(fd);
                continue;
            }
            c.release();  // owned through epoll until close_connection
        }
    }

    void close_connection(Connection* c) {
        epoll_ctl(epoll_, EPOLL_CTL_DEL, c->fd, nullptr);
        ::close(c->fd);
        delete c;
    }

    // Reads what there is, handles every whole packet; false when the connection is done.
    bool on_readable(Connection& c) {
        for (;;) {
            ssize_t got = ::read(c.fd, scratch_, sizeof scratch_);
            if (got == 0) return false;
            if (got < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                return false;
            }
            auto n = static_cast<std::size_t>(got);
            Next next;
            if (c.partial.empty()) {
                next = handle_packets(c, scratch_, n);
            } else {
                c.partial.insert(c.partial.end(), scratch_, scratch_ + n);
                std::vector<unsigned char> data;
                data.swap(c.partial);
                next = handle_packets(c, data.data(), data.size());
            }
            if (next == Next::quit) flush(c);  // what came before the quit, best effort
            if (next != Next::more) return false;
            if (n < sizeof scratch_) break;  // drained
        }
        return flush(c);
    }

    // Handles the whole packets in data; keeps the rest in c.partial.
    static Next handle_packets(Connection& c, const unsigned char* data, std::size_t size) {
        std::size_t at = 0;
        while (size - at >= 4) {
            std::uint32_t length = get_u32(data + at);
            if (length == 0 || length > max_packet) return Next::error;
            if (size - at < 4 + std::size_t{length}) break;
            Next next = command(c, static_cast<char>(data[at + 4]), data + at + 5, length - 1);
            if (next != Next::more) return next;
            at += 4 + length;
        }
        c.partial.assign(data + at, data + size);
        return Next::more;
    }

    static void reply(Connection& c, char code) {
        put_u32(c.out, 1);
        c.out.push_back(code);
    }

    // One command.
    static Next command(Connection& c, char cmd, const unsigned char* data, std::size_t size) {
        switch (cmd) {
            case 'O': {  // option negotiation: version, actions, protocol flags offered
                if (size < 12) return Next::error;
                std::uint32_t version = get_u32(data);
                if (version < 2) return Next::error;
                std::uint32_t actions = get_u32(data + 4), protocol = get_u32(data + 8);
                c.protocol = protocol & (smfip_nr_hdr | smfip_nr_body);
                put_u32(c.out, 13);
                c.out.push_back('O');
                put_u32(c.out, version < max_version ? version : max_version);
                put_u32(c.out, actions & smfif_addhdrs);
                put_u32(c.out, c.protocol);
                return Next::more;
            }
            case 'D':  // macros
            case 'A':  // abort: the next message (or quit) follows
            case 'K':  // quit, a new SMTP session follows: a null milter keeps no session state
                return Next::more;
            case 'Q':
                return Next::quit;
            case 'L':
                if (!(c.protocol & smfip_nr_hdr)) reply(c, 'c');
                return Next::more;
            case 'B':
                if (!(c.protocol & smfip_nr_body)) reply(c, 'c');
                return Next::more;
            case 'E':
                reply(c, 'a');
                return Next::more;
            case 'C':
            case 'H':
            case 'M':
            case 'R':
            case 'T':
            case 'U':
            case 'N':
                reply(c, 'c');
                return Next::more;
            default:
                return Next::error;
        }
    }

    // Writes what is queued; watches for writability only while something is left.
    bool flush(Connection& c) {
        std::size_t done = 0;
        while (done < c.out.size()) {
            ssize_t n = ::send(c.fd, c.out.data() + done, c.out.size() - done, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                return false;
            }
            done += static_cast<std::size_t>(n);
        }
        c.out.erase(0, done);
        bool want = !c.out.empty();
        // An MTA that does not read its replies while it keeps writing gets cut off.
        if (c.out.size() > max_packet) return false;
        if (want != c.want_out) {
            epoll_event ev{};
            ev.events = EPOLLIN | (want ? EPOLLOUT : 0u);
            ev.data.ptr = &c;
            if (epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev) < 0) return false;
            c.want_out = want;
        }
        return true;
    }

    int listener_;
    int epoll_ = -1;
    unsigned char scratch_[64 * 1024];
};

// unix:/path or inet:PORT@ADDRESS (IPv4), libmilter's syntax.
int listen_on(const std::string& address, std::string& unix_path) {
    int fd = -1;
    if (address.rfind("unix:", 0) == 0 || address.rfind("local:", 0) == 0) {
        unix_path = address.substr(address.find(':') + 1);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        if (unix_path.empty() || unix_path.size() >= sizeof sa.sun_path) return -1;
        std::memcpy(sa.sun_path, unix_path.data(), unix_path.size());
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) return -1;
        ::unlink(unix_path.c_str());  // a stale socket, as smfi_opensocket(1) removes it
        if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
            ::close(fd);
            return -1;
        }
    } else if (address.rfind("inet:", 0) == 0) {
        auto at = address.find('@');
        std::string port = address.substr(5, at == std::string::npos ? at : at - 5);
        std::string host = at == std::string::npos ? "127.0.0.1" : address.substr(at + 1);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        char* end = nullptr;
        unsigned long p = std::strtoul(port.c_str(), &end, 10);
        if (port.empty() || *end || p == 0 || p > 65535 ||
            inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1)
            return -1;
        sa.sin_port = htons(static_cast<std::uint16_t>(p));
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) return -1;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
            ::close(fd);
            return -1;
        }
    } else {
        return -1;
    }
    if (listen(fd, SOMAXCONN) < 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: raw_null_milter unix:/path|inet:PORT@127.0.0.1\n");
        return 2;
    }
    std::string unix_path;
    int listener = listen_on(argv[1], unix_path);
    if (listener < 0) {
        std::fprintf(stderr, "raw_null_milter: cannot listen on %s: %s\n", argv[1],
                     std::strerror(errno));
        return 1;
    }
    struct sigaction sa {};
    sa.sa_handler = on_signal;  // no SA_RESTART: epoll_wait returns EINTR
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);
    int rc = Server(listener).run();
    if (!unix_path.empty()) ::unlink(unix_path.c_str());
    return rc;
}
