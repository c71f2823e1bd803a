// callbacks.cpp — the libmilter boundary: the extern "C" callbacks, the per-connection private
// data, and turning a Session's Effects into smfi_* calls.
//
// Entry points: run_milter() (main.cpp calls it once).
//
// Threading: libmilter runs one thread per MTA connection and calls that connection's callbacks
// one at a time; the Services are shared and thread-safe. Every callback catches everything,
// logs once and answers SMFIS_TEMPFAIL: a bug or a surprise must cost a retry, never a crash or a
// permanent reject.
//
// Stopping: libmilter stops by closing every connection at once (its pool controller, at the first
// command it sees after its stop flag is set), so a message in progress would be cut; and its
// stop path races with itself (main.cpp). So libmilter is not asked to stop: stop_milter()
// answers new connections and messages 451 4.3.2 and lets the messages in progress finish (at
// most drain_limit); shut_callbacks() then makes every callback answer tempfail without touching
// anything, so main may destroy the Services and exit while libmilter's threads still exist (they
// end with the process; a connection closed meanwhile is kept, not destroyed: keep_until_exit).
#include "milter/callbacks.hpp"

#include <arpa/inet.h>
#include <libmilter/mfapi.h>
#include <netinet/in.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/log.hpp"
#include "common/metrics_http.hpp"
#include "milter/metrics.hpp"
#include "milter/nodelay.hpp"
#include "milter/session.hpp"

namespace postwarden::milter {

namespace {

// Docker and podman name a container's host after its id: 12 or 64 hexadecimal digits.
bool looks_like_container_id(const std::string& host) {
    if (host.size() != 12 && host.size() != 64) return false;
    return host.find_first_not_of("0123456789abcdef") == std::string::npos;
}

const Services* services = nullptr;
bool unix_listener = false;  // [milter] listen is a unix socket (set before serving)

constexpr auto drain_limit = std::chrono::seconds(10);  // as policyd's

// The stop's state (see the top). seq_cst throughout: a callback counts itself in `running`
// before it looks at `shut`, and shut_callbacks sets `shut` before it reads `running`, so either
// it waits for the callback or the callback sees the door shut.
std::atomic<bool> stopping{false}, shut{false};
std::atomic<int> running{0};   // callbacks in progress
std::atomic<int> messages{0};  // messages past MAIL FROM, not yet ended

// SMFICTX private data: owned here, released in on_close.
struct Connection {
    explicit Connection(const Services& s) : session(s) {
        metrics().sessions.inc();
        metrics().sessions_total.inc();
    }
    ~Connection() {
        end_message();
        metrics().sessions.dec();
    }
    void begin_message() {
        if (!in_message) messages++;
        in_message = true;
    }
    void end_message() {
        if (in_message) messages--;
        in_message = false;
    }
    Session session;
    bool leading_space = false;   // SMFIP_HDR_LEADSPC agreed: header values keep their space
    bool in_message = false;      // counted in `messages`
    bool quiet_content = false;   // SMFIP_NR_HDR and SMFIP_NR_BODY agreed (quiet(), below)
    bool content_failed = false;  // a quiet step failed: the next answered step says tempfail
};

Connection& connection(SMFICTX* ctx) {
    auto* c = static_cast<Connection*>(smfi_getpriv(ctx));
    if (c) return *c;
    auto owned = std::make_unique<Connection>(*services);
    if (smfi_setpriv(ctx, owned.get()) != MI_SUCCESS) throw std::runtime_error("smfi_setpriv");
    return *owned.release();
}

std::string macro(SMFICTX* ctx, const char* name) {
    const char* v = smfi_getsymval(ctx, const_cast<char*>(name));
    return v ? std::string(v) : std::string();
}

// libmilter treats '%' in reply text as a format character, and CR/LF would split the reply.
std::string reply_text(const std::string& text) {
    std::string out;
    for (char c : text)
        if (c != '%' && c != '\r' && c != '\n') out.push_back(c);
    return out;
}

void apply_changes(SMFICTX* ctx, const Effects& e) {
    static char ar_name[] = "Authentication-Results";
    for (int index : e.remove_auth_results)
        if (smfi_chgheader(ctx, ar_name, index, nullptr) != MI_SUCCESS)
            log::warning("could not remove Authentication-Results #" + std::to_string(index));
    // Inserted at the top in reverse, so they read in order.
    for (auto it = e.insert_headers.rbegin(); it != e.insert_headers.rend(); ++it) {
        std::string name = it->first, value = " " + it->second;
        if (smfi_insheader(ctx, 0, name.data(), value.data()) != MI_SUCCESS)
            log::warning("could not add " + name);
    }
    if (!e.quarantine.empty()) {
        std::string reason = e.quarantine;
        if (smfi_quarantine(ctx, reason.data()) != MI_SUCCESS)
            log::warning("could not quarantine the message");
    }
}

// While stopping: the MTA should try again shortly, when a new milter process is there.
Effects restarting() {
    Effects e;
    e.step = Effects::Step::tempfail;
    e.rcode = "451";
    e.xcode = "4.3.2";
    e.text = "Mail filter restarting, try again later";
    return e;
}

sfsistat answer(SMFICTX* ctx, const Effects& e) {
    switch (e.step) {
        case Effects::Step::next:
            return SMFIS_CONTINUE;
        case Effects::Step::accept:
            return SMFIS_ACCEPT;
        case Effects::Step::reject:
        case Effects::Step::tempfail: {
            std::string rcode = e.rcode, xcode = e.xcode, text = reply_text(e.text);
            smfi_setreply(ctx, rcode.data(), xcode.data(), text.data());
            return e.step == Effects::Step::reject ? SMFIS_REJECT : SMFIS_TEMPFAIL;
        }
    }
    return SMFIS_TEMPFAIL;
}

template <typename F>
sfsistat guarded(const char* step, F&& f) {
    struct Running {
        Running() { running++; }
        ~Running() { running--; }
    } counted;
    if (shut) return SMFIS_TEMPFAIL;  // shutting down: the Services may be gone
    try {
        return f();
    } catch (const std::exception& e) {
        log::error(std::string(step) + ": " + e.what() + "; answered tempfail");
    } catch (...) {
        log::error(std::string(step) + ": unknown exception; answered tempfail");
    }
    metrics().errors.inc();
    return SMFIS_TEMPFAIL;
}

std::string address_of(const sockaddr* sa) {
    char text[INET6_ADDRSTRLEN] = {};
    if (!sa) return "";
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, text, sizeof text);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, text,
                  sizeof text);
    return text;
}

// A header or body step: answered as usual, or, when the MTA agreed not to wait for an answer,
// not at all — a failure (only an exception can make one: Session::header and ::body always
// continue) is then kept for the next step that is answered.
template <typename F>
sfsistat content_step(SMFICTX* ctx, const char* step, F&& f) {
    auto* c = static_cast<Connection*>(smfi_getpriv(ctx));
    const bool quiet = c && c->quiet_content;
    sfsistat result = guarded(step, std::forward<F>(f));
    if (!quiet) return result;
    if (result != SMFIS_CONTINUE && !shut) c->content_failed = true;
    return SMFIS_NOREPLY;
}

// A connection that closes after shut_callbacks is not destroyed: its Session's DKIM verifier
// belongs to the Services, which main may be destroying. It is kept, still reachable (so
// LeakSanitizer, which checks at exit, does not count it lost), until the process ends a moment
// later. Never destroyed, like everything here once shut; out of memory, simply dropped.
void keep_until_exit(Connection* c) noexcept {
    static std::mutex lock;
    static auto* const kept = new (std::nothrow) std::vector<Connection*>;
    std::lock_guard hold(lock);
    try {
        if (kept) kept->push_back(c);
    } catch (...) {
    }
}

// True once: a quiet header or body step failed since the last answered step.
bool take_content_failure(Connection& c) {
    return std::exchange(c.content_failed, false);
}

extern "C" {

sfsistat on_negotiate(SMFICTX* ctx, unsigned long f0, unsigned long f1, unsigned long,
                      unsigned long, unsigned long* pf0, unsigned long* pf1, unsigned long* pf2,
                      unsigned long* pf3) {
    return guarded("negotiate", [&] {
        *pf0 = f0 & (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE);
        // DATA is not skipped (no SMFIP_NODATA) although nothing happens there: Postfix sends
        // the DATA macros anyway, and without a reply to wait for they leave alone, so the first
        // header's packet waits for their delayed ACK, 40 ms per message over inet (nodelay.hpp).
        *pf1 = f1 & (SMFIP_HDR_LEADSPC | SMFIP_NOUNKNOWN);
        // Header fields and body chunks never get an answer but "continue" (the decisions come
        // at end of headers and of message), so over a unix socket the MTA is told not to wait
        // for one: about a dozen round trips fewer per message. Not over inet: the MTA then
        // writes event after event without reading, and its Nagle's algorithm holds each write
        // until our delayed ACK (40 ms; rspamd, which asks this, stalls so behind Postfix).
        constexpr unsigned long quiet = SMFIP_NR_HDR | SMFIP_NR_BODY;
        auto& c = connection(ctx);
        if (unix_listener && (f1 & quiet) == quiet) {
            *pf1 |= quiet;
            c.quiet_content = true;
        }
        *pf2 = *pf3 = 0;
        c.leading_space = (*pf1 & SMFIP_HDR_LEADSPC) != 0;
        return SMFIS_CONTINUE;
    });
}

sfsistat on_connect(SMFICTX* ctx, char* hostname, _SOCK_ADDR* address) {
    return guarded("connect", [&] {
        if (stopping) return answer(ctx, restarting());
        return answer(
            ctx, connection(ctx).session.connect(hostname ? hostname : "", address_of(address)));
    });
}

sfsistat on_helo(SMFICTX* ctx, char* name) {
    return guarded("helo",
                   [&] { return answer(ctx, connection(ctx).session.helo(name ? name : "")); });
}

sfsistat on_envfrom(SMFICTX* ctx, char** argv) {
    return guarded("mail", [&] {
        auto& c = connection(ctx);
        if (stopping) {
            c.session.abort();
            return answer(ctx, restarting());
        }
        c.begin_message();
        return answer(ctx,
                      connection(ctx).session.mail(argv && argv[0] ? argv[0] : "",
                                                   macro(ctx, "{auth_authen}"), macro(ctx, "i")));
    });
}

sfsistat on_envrcpt(SMFICTX* ctx, char** argv) {
    return guarded("rcpt", [&] {
        return answer(ctx, connection(ctx).session.rcpt(argv && argv[0] ? argv[0] : ""));
    });
}

sfsistat on_header(SMFICTX* ctx, char* name, char* value) {
    return content_step(ctx, "header", [&] {
        auto& c = connection(ctx);
        return answer(ctx, c.session.header(name ? name : "", value ? value : "", c.leading_space));
    });
}

sfsistat on_eoh(SMFICTX* ctx) {
    return guarded("end of headers", [&] {
        auto& c = connection(ctx);
        if (take_content_failure(c)) return SMFIS_TEMPFAIL;
        return answer(ctx, c.session.end_of_headers(macro(ctx, "i")));
    });
}

sfsistat on_body(SMFICTX* ctx, unsigned char* chunk, size_t size) {
    return content_step(ctx, "body", [&] {
        std::string_view data(reinterpret_cast<const char*>(chunk), chunk ? size : 0);
        return answer(ctx, connection(ctx).session.body(data));
    });
}

sfsistat on_eom(SMFICTX* ctx) {
    return guarded("end of message", [&] {
        auto& c = connection(ctx);
        if (take_content_failure(c)) {
            c.session.abort();
            c.end_message();
            return SMFIS_TEMPFAIL;
        }
        auto e = c.session.end_of_message(macro(ctx, "i"));
        if (e.step == Effects::Step::accept || e.step == Effects::Step::next) apply_changes(ctx, e);
        auto result = answer(ctx, e);
        c.end_message();
        return result;
    });
}

sfsistat on_abort(SMFICTX* ctx) {
    return guarded("abort", [&] {
        auto& c = connection(ctx);
        c.session.abort();
        c.end_message();
        return SMFIS_CONTINUE;
    });
}

sfsistat on_close(SMFICTX* ctx) {
    std::unique_ptr<Connection> owned(static_cast<Connection*>(smfi_getpriv(ctx)));
    smfi_setpriv(ctx, nullptr);
    const sfsistat result = guarded("close", [&] {
        owned.reset();
        return SMFIS_CONTINUE;
    });
    if (owned) keep_until_exit(owned.release());  // shut: see keep_until_exit
    return result;
}

}  // extern "C"

// The metrics endpoint: opened with the socket, closed by shut_callbacks.
std::unique_ptr<metrics::HttpEndpoint> endpoint;

}  // namespace

bool open_milter(const Services& shared) {
    services = &shared;
    static char name[] = "postwarden-milter";
    smfiDesc desc{};
    desc.xxfi_name = name;
    desc.xxfi_version = SMFI_VERSION;
    desc.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE;
    desc.xxfi_connect = on_connect;
    desc.xxfi_helo = on_helo;
    desc.xxfi_envfrom = on_envfrom;
    desc.xxfi_envrcpt = on_envrcpt;
    desc.xxfi_header = on_header;
    desc.xxfi_eoh = on_eoh;
    desc.xxfi_body = on_body;
    desc.xxfi_eom = on_eom;
    desc.xxfi_abort = on_abort;
    desc.xxfi_close = on_close;
    desc.xxfi_negotiate = on_negotiate;
    const auto config = shared.config();
    std::string listen = config->milter.listen;
    unix_listener = listen.rfind("unix:", 0) == 0 || listen.rfind("local:", 0) == 0;
    // libmilter drops packets over 64 KB by default, but Postfix sends header fields of up to
    // header_size_limit (100 KB): allow 1 MB, libmilter's largest setting.
    smfi_setmaxdatasize(1024 * 1024);
    // Bound before the caller gives up root; [metrics] changes need a restart.
    try {
        endpoint = metrics::serve(config->metrics.milter_listen, metrics().registry);
    } catch (const std::exception& e) {
        log::error(e.what());
        return false;
    }
    auto listeners = listening_sockets();
    if (smfi_setconn(listen.data()) != MI_SUCCESS || smfi_register(desc) != MI_SUCCESS ||
        smfi_opensocket(1) != MI_SUCCESS) {
        log::error("cannot listen on " + listen);
        return false;
    }
    // No 40 ms stall per message over inet sockets (milter/nodelay.hpp).
    set_nodelay_on_new_listeners(listeners);
    log::info("listening on " + listen + ", authserv_id " + config->milter.authserv_id);
    if (looks_like_container_id(config->milter.authserv_id))
        log::warning("authserv_id " + config->milter.authserv_id +
                     " looks like a container's host name, which changes with every container: "
                     "set [milter] authserv_id to the MX's name, or forged Authentication-Results "
                     "carrying that name are not removed");
    return true;
}

int run_milter() {
    return smfi_main() == MI_SUCCESS ? 0 : 1;
}

void stop_milter() {
    stopping = true;
    if (const int open = messages; open > 0)
        log::notice("stopping: finishing " + std::to_string(open) + " message(s)");
    const auto deadline = std::chrono::steady_clock::now() + drain_limit;
    while (messages > 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (const int left = messages; left > 0)
        log::warning("stopping: " + std::to_string(left) + " message(s) unfinished after " +
                     std::to_string(drain_limit.count()) +
                     " s; the MTA applies its milter_default_action");
}

void shut_callbacks() {
    stopping = true;
    shut = true;
    while (running > 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    endpoint.reset();
}

}  // namespace postwarden::milter
