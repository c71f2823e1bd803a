// callbacks.cpp — the libmilter boundary: the extern "C" callbacks, the per-connection private
// data, and turning a Session's Effects into smfi_* calls.
//
// Entry points: run_milter() (main.cpp calls it once).
//
// Threading: libmilter runs one thread per MTA connection and calls that connection's callbacks
// one at a time; the Services are shared and thread-safe. Every callback catches everything,
// logs once and answers SMFIS_TEMPFAIL: a bug or a surprise must cost a retry, never a crash or a
// permanent reject.
#include "milter/callbacks.hpp"

#include <arpa/inet.h>
#include <libmilter/mfapi.h>
#include <netinet/in.h>

#include <memory>
#include <string>

#include "common/log.hpp"
#include "common/metrics_http.hpp"
#include "milter/metrics.hpp"
#include "milter/nodelay.hpp"
#include "milter/session.hpp"

namespace postwarden::milter {

namespace {

const Services* services = nullptr;

// SMFICTX private data: owned here, released in on_close.
struct Connection {
    explicit Connection(const Services& s) : session(s) {
        metrics().sessions.inc();
        metrics().sessions_total.inc();
    }
    ~Connection() { metrics().sessions.dec(); }
    Session session;
    bool leading_space = false;  // SMFIP_HDR_LEADSPC agreed: header values keep their space
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
        *pf2 = *pf3 = 0;
        connection(ctx).leading_space = (*pf1 & SMFIP_HDR_LEADSPC) != 0;
        return SMFIS_CONTINUE;
    });
}

sfsistat on_connect(SMFICTX* ctx, char* hostname, _SOCK_ADDR* address) {
    return guarded("connect", [&] {
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
    return guarded("header", [&] {
        auto& c = connection(ctx);
        return answer(ctx, c.session.header(name ? name : "", value ? value : "", c.leading_space));
    });
}

sfsistat on_eoh(SMFICTX* ctx) {
    return guarded("end of headers", [&] {
        return answer(ctx, connection(ctx).session.end_of_headers(macro(ctx, "i")));
    });
}

sfsistat on_body(SMFICTX* ctx, unsigned char* chunk, size_t size) {
    return guarded("body", [&] {
        std::string_view data(reinterpret_cast<const char*>(chunk), chunk ? size : 0);
        return answer(ctx, connection(ctx).session.body(data));
    });
}

sfsistat on_eom(SMFICTX* ctx) {
    return guarded("end of message", [&] {
        auto e = connection(ctx).session.end_of_message(macro(ctx, "i"));
        if (e.step == Effects::Step::accept || e.step == Effects::Step::next) apply_changes(ctx, e);
        return answer(ctx, e);
    });
}

sfsistat on_abort(SMFICTX* ctx) {
    return guarded("abort", [&] {
        connection(ctx).session.abort();
        return SMFIS_CONTINUE;
    });
}

sfsistat on_close(SMFICTX* ctx) {
    return guarded("close", [&] {
        std::unique_ptr<Connection> owned(static_cast<Connection*>(smfi_getpriv(ctx)));
        smfi_setpriv(ctx, nullptr);
        return SMFIS_CONTINUE;
    });
}

}  // extern "C"

}  // namespace

int run_milter(const Services& shared, const std::function<bool()>& after_listen) {
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
    std::string listen = shared.config->milter.listen;
    // libmilter drops packets over 64 KB by default, but Postfix sends header fields of up to
    // header_size_limit (100 KB): allow 1 MB, libmilter's largest setting.
    smfi_setmaxdatasize(1024 * 1024);
    // Bound before after_listen gives up root; [metrics] changes need a restart.
    std::unique_ptr<metrics::HttpEndpoint> endpoint;
    try {
        endpoint = metrics::serve(shared.config->metrics.milter_listen, metrics().registry);
    } catch (const std::exception& e) {
        log::error(e.what());
        return 1;
    }
    auto listeners = listening_sockets();
    if (smfi_setconn(listen.data()) != MI_SUCCESS || smfi_register(desc) != MI_SUCCESS ||
        smfi_opensocket(1) != MI_SUCCESS) {
        log::error("cannot listen on " + listen);
        return 1;
    }
    // No 40 ms stall per message over inet sockets (milter/nodelay.hpp).
    set_nodelay_on_new_listeners(listeners);
    log::info("listening on " + listen + ", authserv_id " + shared.config->milter.authserv_id);
    if (after_listen && !after_listen()) return 1;
    return smfi_main() == MI_SUCCESS ? 0 : 1;
}

}  // namespace postwarden::milter
