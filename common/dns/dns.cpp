// dns.cpp — the c-ares stub resolver behind dns.hpp: one blocking query on a channel of its
// own, and a small parser for the answer section. The nameserver syntax is common/nameservers.cpp.
//
// Threading: a channel serves one query() at a time, on the calling thread; between queries it
// rests in the Resolver's ChannelPool (mutex-guarded). ares_library_init runs once.
#include "common/dns/dns.hpp"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <poll.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <vector>

#include "common/dns/dns_cache.hpp"
#include "common/idna.hpp"
#include "common/metrics.hpp"
#include "common/nameservers.hpp"

namespace postwarden::dns {
namespace {

using Clock = std::chrono::steady_clock;

// ares_library_init is not thread-safe and must run once before any channel exists.
void init_library() {
    static std::once_flag once;
    std::call_once(once, [] {
        if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS)
            throw std::runtime_error("ares_library_init failed");
    });
}

// ---- the answer section -------------------------------------------------------------------

struct Reader {
    const unsigned char* packet;
    int length;
    int offset;
};

std::optional<std::string> read_name(Reader* reader) {
    char* name = nullptr;
    long used = 0;
    if (ares_expand_name(reader->packet + reader->offset, reader->packet, reader->length, &name,
                         &used) != ARES_SUCCESS)
        return std::nullopt;
    std::string result(name);
    ares_free_string(name);
    reader->offset += static_cast<int>(used);
    return result;
}

std::uint16_t get16(const unsigned char* p) {
    return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}

// TXT rdata is a sequence of <length><bytes> strings; RFC 7208 §3.3 joins them without spaces.
std::optional<std::string> decode_txt(const unsigned char* rdata, int length) {
    std::string text;
    int i = 0;
    while (i < length) {
        int size = rdata[i];
        if (i + 1 + size > length) return std::nullopt;
        text.append(reinterpret_cast<const char*>(rdata + i + 1), size);
        i += 1 + size;
    }
    return text;
}

// Decodes one record of the asked type into the answer; false if its rdata is malformed.
bool decode_record(Type type, Reader rdata_reader, int rdlength, Answer* answer) {
    const unsigned char* rdata = rdata_reader.packet + rdata_reader.offset;
    char text[INET6_ADDRSTRLEN];
    switch (type) {
        case Type::a:
            if (rdlength != 4 || !inet_ntop(AF_INET, rdata, text, sizeof text)) return false;
            answer->addresses.emplace_back(text);
            return true;
        case Type::aaaa:
            if (rdlength != 16 || !inet_ntop(AF_INET6, rdata, text, sizeof text)) return false;
            answer->addresses.emplace_back(text);
            return true;
        case Type::txt:
        case Type::spf: {
            auto joined = decode_txt(rdata, rdlength);
            if (!joined) return false;
            answer->texts.push_back(std::move(*joined));
            return true;
        }
        case Type::mx: {
            if (rdlength < 3) return false;
            MxRecord mx{get16(rdata), {}};
            rdata_reader.offset += 2;
            auto host = read_name(&rdata_reader);
            if (!host) return false;
            mx.host = std::move(*host);
            answer->mx.push_back(std::move(mx));
            return true;
        }
        case Type::ptr: {
            auto host = read_name(&rdata_reader);
            if (!host) return false;
            answer->names.push_back(std::move(*host));
            return true;
        }
    }
    return false;
}

// Walks the answer section and keeps the records of the asked type. CNAME records are skipped:
// the server already followed the chain, and the records at its end are what we asked for.
bool parse_answer(Type type, Answer* answer) {
    Reader reader{answer->packet.data(), static_cast<int>(answer->packet.size()), NS_HFIXEDSZ};
    if (reader.length < NS_HFIXEDSZ) return false;
    int questions = get16(reader.packet + 4);
    int records = get16(reader.packet + 6);
    for (int i = 0; i < questions; ++i) {
        if (!read_name(&reader) || reader.offset + 4 > reader.length) return false;
        reader.offset += 4;
    }
    for (int i = 0; i < records; ++i) {
        if (!read_name(&reader) || reader.offset + 10 > reader.length) return false;
        const unsigned char* fixed = reader.packet + reader.offset;
        int rdlength = get16(fixed + 8);
        reader.offset += 10;
        if (reader.offset + rdlength > reader.length) return false;
        bool wanted = get16(fixed) == static_cast<std::uint16_t>(type) && get16(fixed + 2) == 1;
        if (wanted && !decode_record(type, reader, rdlength, answer)) return false;
        reader.offset += rdlength;
    }
    return true;
}

bool has_records(const Answer& answer) {
    return !answer.addresses.empty() || !answer.texts.empty() || !answer.mx.empty() ||
           !answer.names.empty();
}

// ---- one query on one channel -------------------------------------------------------------

struct ChannelDeleter {
    void operator()(ares_channel channel) const { ares_destroy(channel); }
};
using Channel = std::unique_ptr<std::remove_pointer_t<ares_channel>, ChannelDeleter>;

}  // namespace

// Making a channel costs more than the query it serves (ares_init_options reads resolv.conf and
// the hosts file; with ares_destroy about half of policyd's instructions for a new triplet), so
// an idle channel is kept for the next query. Reuse keeps every query on a new socket: with no
// query pending c-ares closes a channel's sockets (ARES_FLAG_STAYOPEN is not set), so each query
// still leaves from a fresh random source port (RFC 5452). A channel is kept only after a query
// that got an answer, and for at most a minute, so a changed resolv.conf is read again.
class ChannelPool {
  public:
    ChannelPool(int timeout_ms, std::vector<ares_addr_port_node> servers)
        : timeout_ms_(timeout_ms), servers_(std::move(servers)) {
        for (std::size_t i = 0; i < servers_.size(); ++i)
            servers_[i].next = i + 1 < servers_.size() ? &servers_[i + 1] : nullptr;
    }
    ~ChannelPool() {
        for (auto& idle : idle_)
            ares_destroy(idle.channel);
    }
    ChannelPool(const ChannelPool&) = delete;
    ChannelPool& operator=(const ChannelPool&) = delete;

    // An idle channel, or a new one, and when it was made (*made); null with *error set when
    // c-ares cannot make one.
    ares_channel take(Clock::time_point now, Clock::time_point* made, std::string* error) {
        {
            std::lock_guard lock(mutex_);
            while (!idle_.empty()) {
                auto idle = idle_.back();
                idle_.pop_back();
                if (now - idle.made < std::chrono::minutes(1)) {
                    *made = idle.made;
                    return idle.channel;
                }
                ares_destroy(idle.channel);
            }
        }
        *made = now;
        return make(error);
    }
    // A channel whose query was answered (none pending), made at `made`.
    void give(ares_channel channel, Clock::time_point made) {
        {
            std::lock_guard lock(mutex_);
            if (idle_.size() < max_idle) {
                idle_.push_back(Idle{channel, made});
                return;
            }
        }
        ares_destroy(channel);
    }

  private:
    // Two tries per server; c-ares doubles the timeout on each round, so the first try gets a
    // third of the budget. The deadline in drive() bounds the total whatever c-ares does.
    ares_channel make(std::string* error) {
        ares_options opts{};
        opts.timeout = std::max(1, timeout_ms_ / 3);
        opts.tries = 2;
        opts.flags = ARES_FLAG_NOSEARCH;
        int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS;
        ares_channel channel = nullptr;
        int rc = ares_init_options(&channel, &opts, mask);
        if (rc == ARES_SUCCESS && !servers_.empty()) {
            rc = ares_set_servers_ports(channel, servers_.data());
            if (rc != ARES_SUCCESS) ares_destroy(channel);
        }
        if (rc == ARES_SUCCESS) return channel;
        *error = ares_strerror(rc);
        return nullptr;
    }

    // More than the threads that query at once (policyd's SPF pool, libmilter's workers).
    static constexpr std::size_t max_idle = 64;
    struct Idle {
        ares_channel channel;
        Clock::time_point made;
    };
    const int timeout_ms_;
    std::vector<ares_addr_port_node> servers_;  // linked through .next; empty: resolv.conf
    std::mutex mutex_;
    std::vector<Idle> idle_;
};

namespace {

struct Pending {
    Type type = Type::a;
    bool done = false;
    Answer answer;
};

Status status_of(int ares_status) {
    switch (ares_status) {
        case ARES_SUCCESS:
            return Status::ok;
        case ARES_ENODATA:
            return Status::nodata;
        case ARES_ENOTFOUND:
            return Status::nxdomain;
        // A name that cannot be put in a query (a label over 63 octets…) cannot exist either.
        case ARES_EBADNAME:
            return Status::nxdomain;
        default:
            return Status::temp_error;
    }
}

// Fills the answer from c-ares' status and the packet (already in answer_out->packet).
void complete(int ares_status, Type type, Answer* answer_out) {
    Answer& answer = *answer_out;
    answer.status = status_of(ares_status);
    if (answer.status == Status::temp_error) {
        // Our deadline cancels the query; c-ares may also give up first: both are "timeout".
        bool timed_out = ares_status == ARES_ETIMEOUT || ares_status == ARES_ECANCELLED;
        answer.error = timed_out ? "timeout" : ares_strerror(ares_status);
        return;
    }
    if (answer.status != Status::ok) return;
    if (!parse_answer(type, &answer)) {
        answer = Answer{Status::temp_error, {}, {}, {}, {}, std::move(answer.packet),
                        "malformed answer"};
        return;
    }
    // NOERROR whose answer holds only CNAMEs or other types: the name has no such record.
    if (!has_records(answer)) answer.status = Status::nodata;
}

void on_answer(void* arg, int ares_status, int, unsigned char* abuf, int alen) {
    auto* pending = static_cast<Pending*>(arg);
    pending->done = true;
    if (abuf && alen > 0) pending->answer.packet.assign(abuf, abuf + alen);
    complete(ares_status, pending->type, &pending->answer);
}

// Runs the channel's sockets until the query completes or the deadline passes.
void drive(ares_channel channel, const Pending& pending, Clock::time_point deadline) {
    while (!pending.done) {
        auto now = Clock::now();
        if (now >= deadline) {
            ares_cancel(channel);  // calls on_answer with ARES_ECANCELLED
            return;
        }
        ares_socket_t sockets[ARES_GETSOCK_MAXNUM];
        int bits = ares_getsock(channel, sockets, ARES_GETSOCK_MAXNUM);
        pollfd fds[ARES_GETSOCK_MAXNUM];
        int count = 0;
        for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
            short events = 0;
            if (ARES_GETSOCK_READABLE(bits, i)) events |= POLLIN;
            if (ARES_GETSOCK_WRITABLE(bits, i)) events |= POLLOUT;
            if (events) fds[count++] = pollfd{sockets[i], events, 0};
        }
        timeval max_wait{1, 0};
        timeval wait{};
        ares_timeout(channel, &max_wait, &wait);
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
        int wait_ms = static_cast<int>(std::min<long long>(
            left.count() + 1, wait.tv_sec * 1000LL + (wait.tv_usec + 999) / 1000));
        int ready = poll(fds, count, wait_ms);
        if (ready < 0 && errno != EINTR) {
            ares_cancel(channel);
            return;
        }
        if (ready <= 0) {
            ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // handle timeouts
            continue;
        }
        for (int i = 0; i < count; ++i) {
            if (!fds[i].revents) continue;
            bool readable = fds[i].revents & (POLLIN | POLLERR | POLLHUP);
            bool writable = fds[i].revents & POLLOUT;
            ares_process_fd(channel, readable ? fds[i].fd : ARES_SOCKET_BAD,
                            writable ? fds[i].fd : ARES_SOCKET_BAD);
        }
    }
}

}  // namespace

Answer decode_reply(std::vector<unsigned char> packet, Type type) {
    Answer answer;
    answer.packet = std::move(packet);
    if (answer.packet.size() < NS_HFIXEDSZ) {
        answer.error = "malformed answer";
        return answer;
    }
    // What c-ares makes of the header before it calls on_answer.
    int rcode = answer.packet[3] & 0x0f;
    int status = rcode == ns_r_nxdomain                 ? ARES_ENOTFOUND
                 : rcode != ns_r_noerror                ? ARES_ESERVFAIL
                 : get16(answer.packet.data() + 6) == 0 ? ARES_ENODATA
                                                        : ARES_SUCCESS;
    complete(status, type, &answer);
    return answer;
}

Resolver::Resolver(ResolverOptions options) : options_(std::move(options)) {
    if (options_.timeout_ms < 1) throw std::invalid_argument("dns timeout_ms must be positive");
    std::vector<ares_addr_port_node> servers;
    for (const auto& entry : options_.nameservers) {
        std::string error;
        auto parsed = parse_nameserver(entry, &error);
        if (!parsed) throw std::invalid_argument("dns nameservers: " + error);
        ares_addr_port_node node{};
        node.family = parsed->family;
        std::memcpy(&node.addr, parsed->address, parsed->family == AF_INET ? 4 : 16);
        node.udp_port = node.tcp_port = parsed->port;
        servers.push_back(node);
    }
    pool_ = std::make_shared<ChannelPool>(options_.timeout_ms, std::move(servers));
}

// A name with non-ASCII bytes goes to the wire (and the cache) in A-labels: a policy or key
// published for "bücher.example" lives at "xn--bcher-kva.example". One that cannot be converted
// cannot exist in DNS: nxdomain, as for a name c-ares cannot encode. ASCII names pass as they are.
Answer Resolver::query(std::string_view name, Type type) const {
    return query(name, type, Clock::time_point::max());
}

Answer Resolver::query(std::string_view name, Type type, Clock::time_point deadline) const {
    std::string a_label;
    if (!is_ascii(name)) {
        auto converted = to_a_label(name);
        if (!converted) return Answer{Status::nxdomain, {}, {}, {}, {}, {}, "not a valid IDN"};
        name = a_label = std::move(*converted);
    }
    AnswerCache* cache = options_.cache.get();
    if (cache)
        if (auto kept = cache->find(name, type, Clock::now())) return *kept;
    auto start = Clock::now();
    if (start >= deadline) return Answer{Status::temp_error, {}, {}, {}, {}, {}, "deadline"};
    Answer answer = lookup(name, type, deadline);
    auto end = Clock::now();
    if (options_.latency) options_.latency->observe(end - start);
    if (options_.lookups) options_.lookups->inc(static_cast<std::size_t>(answer.status));
    if (cache) cache->store(name, type, answer, end);
    return answer;
}

std::shared_ptr<const Answer> Resolver::cached(std::string_view name, Type type) const {
    AnswerCache* cache = options_.cache.get();
    if (!cache) return nullptr;
    if (is_ascii(name)) return cache->find(name, type, Clock::now(), false);
    auto a_label = to_a_label(name);  // as query() spells what it stores
    return a_label ? cache->find(*a_label, type, Clock::now(), false) : nullptr;
}

Answer Resolver::lookup(std::string_view name, Type type, Clock::time_point deadline) const {
    if (source_) return source_(name, type);
    init_library();
    Clock::time_point made;
    std::string error;
    Channel channel(pool_->take(Clock::now(), &made, &error));
    if (!channel) return Answer{Status::temp_error, {}, {}, {}, {}, {}, std::move(error)};

    Pending pending;
    pending.type = type;
    std::string qname(name);
    deadline = std::min(deadline, Clock::now() + std::chrono::milliseconds(options_.timeout_ms));
    ares_query(channel.get(), qname.c_str(), ns_c_in, static_cast<int>(type), on_answer, &pending);
    drive(channel.get(), pending, deadline);
    if (!pending.done) return Answer{Status::temp_error, {}, {}, {}, {}, {}, "timeout"};
    if (pending.answer.status != Status::temp_error) pool_->give(channel.release(), made);
    return std::move(pending.answer);
}

}  // namespace postwarden::dns
