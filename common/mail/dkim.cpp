// dkim.cpp — libopendkim behind RAII, its DNS hooks on dns::Resolver, and signature verdicts;
// see dkim.hpp.
//
// libopendkim's DNS hook contract (dkim-keys.c): query_start() gets the buffer the answer must be
// written to, waitreply() says whether it is there and how long it is, cancel() is always called
// afterwards. Our query_start() runs the whole (blocking, time-bounded) lookup, so waitreply()
// only reports. The library parses the raw packet itself, which is why dns::Answer keeps it.
#include "common/mail/dkim.hpp"

// dkim.h is C and spells bool the C99 way; C++ has no _Bool.
#define _Bool bool
#include <opendkim/dkim.h>
#undef _Bool

#include <cstring>
#include <stdexcept>

#include "common/address.hpp"

namespace postwarden::dkim {

namespace {

struct Query {
    int status = DKIM_DNS_ERROR;
    std::size_t bytes = 0;
};

// A reply header and question for a name that does not exist (or has no such record) when the
// resolver had no packet to give (a name c-ares refused to encode): libopendkim wants one.
std::vector<unsigned char> synthetic_reply(std::string_view name, int type, bool nxdomain) {
    std::vector<unsigned char> p = {
        0, 0, 0x81, static_cast<unsigned char>(nxdomain ? 0x83 : 0x80), 0, 1, 0, 0, 0, 0, 0, 0};
    std::vector<unsigned char> qname;
    std::size_t start = 0;
    while (start < name.size()) {
        auto dot = name.find('.', start);
        if (dot == std::string_view::npos) dot = name.size();
        auto label = name.substr(start, dot - start);
        if (label.empty() || label.size() > 63) break;
        qname.push_back(static_cast<unsigned char>(label.size()));
        qname.insert(qname.end(), label.begin(), label.end());
        start = dot + 1;
    }
    if (start < name.size() || qname.size() > 254) qname.clear();  // unencodable: the root
    p.insert(p.end(), qname.begin(), qname.end());
    p.insert(p.end(), {0, static_cast<unsigned char>(type >> 8),
                       static_cast<unsigned char>(type & 0xff), 0, 1});
    return p;
}

int query_start(void* service, int type, unsigned char* name, unsigned char* buf,
                std::size_t buflen, void** handle) {
    try {
        auto* resolver = static_cast<const dns::Resolver*>(service);
        auto q = std::make_unique<Query>();
        std::string_view qname(reinterpret_cast<const char*>(name));
        auto answer = resolver->query(qname, static_cast<dns::Type>(type));
        if (answer.status == dns::Status::temp_error) {
            q->status =
                answer.error.find("time") != std::string::npos ? DKIM_DNS_EXPIRED : DKIM_DNS_ERROR;
        } else {
            auto packet = std::move(answer.packet);
            if (packet.size() < 12)
                packet = synthetic_reply(qname, type, answer.status == dns::Status::nxdomain);
            if (packet.size() <= buflen) {
                std::memcpy(buf, packet.data(), packet.size());
                q->status = DKIM_DNS_SUCCESS;
                q->bytes = packet.size();
            }
        }
        *handle = q.release();
        return 0;
    } catch (...) {
        return -1;  // libopendkim reports "query failed": a temporary error
    }
}

int query_waitreply(void*, void* handle, struct timeval*, std::size_t* bytes, int* error,
                    int* dnssec) {
    auto* q = static_cast<Query*>(handle);
    if (bytes) *bytes = q->bytes;
    if (error) *error = 0;
    if (dnssec) *dnssec = DKIM_DNSSEC_UNKNOWN;
    return q->status;
}

int query_cancel(void*, void* handle) {
    delete static_cast<Query*>(handle);
    return 0;
}

int service_init(void**) {
    return 0;  // the service is ours and already set; never let libopendkim make its own
}

void service_close(void*) {}  // the Resolver is owned by Library

// Verifies only the first max_signatures signatures: each one costs a DNS lookup.
DKIM_CBSTAT prescreen(DKIM* handle, DKIM_SIGINFO** sigs, int nsigs) {
    auto* limits = static_cast<const Limits*>(dkim_get_user_context(handle));
    int max = limits ? limits->max_signatures : 8;
    for (int i = max; i < nsigs; ++i)
        dkim_sig_ignore(sigs[i]);
    return DKIM_CBSTAT_CONTINUE;
}

std::string algorithm_name(DKIM_SIGINFO* sig) {
    dkim_alg_t alg = -1;
    if (dkim_sig_getsignalg(sig, &alg) != DKIM_STAT_OK) return "";
    switch (alg) {
        case DKIM_SIGN_RSASHA1:
            return "rsa-sha1";
        case DKIM_SIGN_RSASHA256:
            return "rsa-sha256";
        case DKIM_SIGN_ED25519SHA256:
            return "ed25519-sha256";
    }
    return "";
}

std::string text_of(const unsigned char* s) {
    return s ? std::string(reinterpret_cast<const char*>(s)) : std::string();
}

// Which result an error stands for (RFC 8601 §2.7.1): a failed lookup may succeed later.
Result result_of_error(int error) {
    switch (error) {
        case DKIM_SIGERROR_KEYFAIL:
            return Result::temperror;
        case DKIM_SIGERROR_BADSIG:
            return Result::fail;
        default:
            return Result::permerror;
    }
}

// RFC 8301: rsa-sha1 is never valid (§3.1) and RSA keys are at least 1024 bits (§3.2).
constexpr unsigned int min_rsa_bits = 1024;

// Why RFC 8301 refuses the signature, or "" when it does not. Such a signature is reported
// dkim=policy (RFC 8601 §2.7.1: "signed, but some aspect of the signature was not acceptable"),
// whatever its cryptography says: a verdict on it would vouch for nothing.
std::string refused_by_rfc8301(DKIM_SIGINFO* sig, const std::string& algorithm) {
    if (algorithm == "rsa-sha1") return "rsa-sha1 is not accepted, RFC 8301";
    unsigned int bits = 0;
    const bool rsa = algorithm == "rsa-sha256";
    const bool too_small =
        dkim_sig_geterror(sig) == DKIM_SIGERROR_KEYTOOSMALL ||
        (rsa && dkim_sig_getkeysize(sig, &bits) == DKIM_STAT_OK && bits > 0 && bits < min_rsa_bits);
    if (!too_small) return "";
    if (bits == 0) (void)dkim_sig_getkeysize(sig, &bits);
    return "RSA key of " + (bits ? std::to_string(bits) + " bits" : std::string("unknown size")) +
           ", under " + std::to_string(min_rsa_bits) + ", RFC 8301";
}

}  // namespace

std::string_view to_string(Result result) {
    switch (result) {
        case Result::none:
            return "none";
        case Result::pass:
            return "pass";
        case Result::fail:
            return "fail";
        case Result::neutral:
            return "neutral";
        case Result::policy:
            return "policy";
        case Result::temperror:
            return "temperror";
        case Result::permerror:
            return "permerror";
    }
    return "none";
}

Library::Library(const dns::ResolverOptions& dns, Limits limits)
    : Library(dns::Resolver(dns), limits) {}

Library::Library(dns::Resolver resolver, Limits limits)
    : resolver_(std::make_unique<dns::Resolver>(std::move(resolver))),
      lib_(dkim_init(nullptr, nullptr)),
      limits_(limits) {
    if (!lib_) throw std::runtime_error("libopendkim: dkim_init failed");
    unsigned int flags = DKIM_LIBFLAGS_FIXCRLF | DKIM_LIBFLAGS_BADSIGHANDLES;
    dkim_options(lib_, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof flags);
    // libopendkim's default, stated: a shorter RSA key is DKIM_SIGERROR_KEYTOOSMALL (RFC 8301).
    unsigned int min_bits = min_rsa_bits;
    dkim_options(lib_, DKIM_OP_SETOPT, DKIM_OPTS_MINKEYBITS, &min_bits, sizeof min_bits);
    dkim_dns_set_init(lib_, service_init);
    dkim_dns_set_close(lib_, service_close);
    dkim_dns_set_query_service(lib_, resolver_.get());
    dkim_dns_set_query_start(lib_, query_start);
    dkim_dns_set_query_waitreply(lib_, query_waitreply);
    dkim_dns_set_query_cancel(lib_, query_cancel);
    dkim_set_prescreen(lib_, prescreen);
}

Library::~Library() {
    dkim_close(lib_);
}

std::string crlf_field(std::string_view field) {
    field = field.substr(0, field.find('\0'));
    std::string copy;
    copy.reserve(field.size() + 8);
    for (std::size_t i = 0; i < field.size(); ++i) {
        if (field[i] == '\n' && (i == 0 || field[i - 1] != '\r')) copy.push_back('\r');
        copy.push_back(field[i]);
    }
    return copy;
}

// ---- canonical body length --------------------------------------------------------------

void BodyLength::feed(std::string_view chunk) {
    for (char c : chunk) {
        simple_.feed(c);
        relaxed_.feed(c);
    }
}

long long BodyLength::simple() const {
    return simple_.total();
}
long long BodyLength::relaxed() const {
    return relaxed_.total();
}

void BodyLength::Counter::feed(char c) {
    if (c == '\n') return end_line();
    if (c == '\r') return;  // line ends are counted as CRLF whatever the input used
    if (relax && (c == ' ' || c == '\t')) {
        pending_space = true;  // a run of blanks counts once, and not at all at the line end
        return;
    }
    if (pending_space) ++line, pending_space = false;
    ++line;
}

void BodyLength::Counter::end_line() {
    if (line == 0) {
        held_empty += 2;  // trailing empty lines do not count, unless text follows them
    } else {
        committed += held_empty + line + 2;
        held_empty = 0;
    }
    line = 0;
    pending_space = false;
}

long long BodyLength::Counter::total() const {
    Counter c = *this;
    if (c.line > 0) c.end_line();              // an unterminated last line gets its CRLF
    if (!relax && c.committed == 0) return 2;  // an empty body is one CRLF in simple
    return c.committed;
}

// ---- verifier ---------------------------------------------------------------------------

Verifier::Verifier(const Library& library, std::string_view id) : library_(library) {
    DKIM_STAT status = DKIM_STAT_OK;
    std::string label(id.empty() ? "message" : id);
    handle_ = dkim_verify(library.handle(), reinterpret_cast<const unsigned char*>(label.c_str()),
                          nullptr, &status);
    if (!handle_) {
        failed_ = true;
        failure_ = "libopendkim could not start";
        return;
    }
    dkim_set_user_context(handle_, const_cast<Limits*>(&library.limits()));
}

Verifier::~Verifier() {
    if (handle_) dkim_free(handle_);
}

void Verifier::header(std::string_view field) {
    if (failed_ || too_large_) return;
    // libopendkim measures fields with strlen in places: a NUL inside one made it read past its
    // copy (heap overflow in dkim_eoh, found by tests/fuzz/fuzz_dkim). libmilter hands values
    // over as C strings, so the MTA cannot send one; any other caller gets the field cut there.
    field = field.substr(0, field.find('\0'));
    if (field.empty()) return;  // dkim_header() asserts a length (also found by fuzz_dkim)
    ++headers_;
    header_bytes_ += field.size();
    if (headers_ > library_.limits().max_headers ||
        header_bytes_ > library_.limits().max_header_bytes) {
        too_large_ = true;
        return;
    }
    // Postfix hands milters folded header values with bare LF line ends; the signer hashed
    // CRLF. libopendkim's FIXCRLF covers the body, not headers, so we restore CRLF here.
    std::string copy = crlf_field(field);  // also: libopendkim wants a mutable buffer
    // A field libopendkim cannot parse is skipped, as a verifier that never saw it would.
    (void)dkim_header(handle_, reinterpret_cast<unsigned char*>(copy.data()), copy.size());
}

void Verifier::end_of_headers() {
    if (failed_ || too_large_) return;
    DKIM_STAT status = dkim_eoh(handle_);
    if (status == DKIM_STAT_NOSIG) {
        no_signatures_ = true;
    } else if (status != DKIM_STAT_OK) {
        failed_ = true;
        const char* why = dkim_geterror(handle_);
        failure_ = why && *why ? why : dkim_getresultstr(status);
    } else {
        // The canonical body length only matters to a signature with l=; counting it costs a
        // pass over the body per canonicalization (5 % of a message's instructions), so only
        // then.
        DKIM_SIGINFO** sigs = nullptr;
        int n = 0;
        static unsigned char l_tag[] = "l";
        if (dkim_getsiglist(handle_, &sigs, &n) == DKIM_STAT_OK)
            for (int i = 0; i < n && !count_length_; ++i)
                count_length_ = dkim_sig_gettagvalue(sigs[i], false, l_tag) != nullptr;
    }
}

void Verifier::body(std::string_view chunk) {
    if (failed_ || too_large_ || no_signatures_) return;
    if (count_length_) body_length_.feed(chunk);
    std::string copy(chunk);
    if (dkim_body(handle_, reinterpret_cast<unsigned char*>(copy.data()), copy.size()) !=
        DKIM_STAT_OK) {
        failed_ = true;
        failure_ = "body could not be hashed";
    }
}

namespace {

// The verdict of one signature libopendkim processed.
Signature verdict(::dkim* handle, DKIM_SIGINFO* sig, const BodyLength& length) {
    Signature s;
    s.domain = to_lower(text_of(dkim_sig_getdomain(sig)));
    s.selector = text_of(dkim_sig_getselector(sig));
    s.algorithm = algorithm_name(sig);
    unsigned int flags = dkim_sig_getflags(sig);
    int error = dkim_sig_geterror(sig);
    if (auto refused = refused_by_rfc8301(sig, s.algorithm); !refused.empty()) {
        s.result = Result::policy;
        s.reason = std::move(refused);
        return s;
    }
    if (!(flags & DKIM_SIGFLAG_PROCESSED) && error == DKIM_SIGERROR_OK) {
        s.result = Result::permerror;
        s.reason = "not verified";
        return s;
    }
    if ((flags & DKIM_SIGFLAG_PASSED) && dkim_sig_getbh(sig) == DKIM_SIGBH_MATCH) {
        s.result = Result::pass;
        // l= (RFC 6376 §8.2): text appended after the signed length is not covered, so such a
        // signature vouches for nothing we can show; it does not pass.
        ssize_t signlen = -1;
        dkim_canon_t hc = DKIM_CANON_SIMPLE, bc = DKIM_CANON_SIMPLE;
        dkim_sig_getcanonlen(handle, sig, nullptr, nullptr, &signlen);
        dkim_sig_getcanons(sig, &hc, &bc);
        long long full = bc == DKIM_CANON_RELAXED ? length.relaxed() : length.simple();
        if (signlen >= 0 && signlen < full) {
            s.result = Result::policy;
            s.reason = "l= leaves part of the body unsigned";
        }
        return s;
    }
    if (dkim_sig_getbh(sig) == DKIM_SIGBH_MISMATCH) {
        s.result = Result::fail;
        s.reason = "body hash mismatch";
        return s;
    }
    s.result = error == DKIM_SIGERROR_OK ? Result::fail : result_of_error(error);
    const char* why = error == DKIM_SIGERROR_OK ? nullptr : dkim_sig_geterrorstr(error);
    s.reason = why ? why : "signature did not verify";
    return s;
}

}  // namespace

std::vector<Signature> Verifier::finish() {
    if (too_large_) return {{Result::permerror, "", "", "", "headers too large to verify"}};
    if (no_signatures_ || !handle_) return {};
    if (!failed_) {
        DKIM_STAT status = dkim_eom(handle_, nullptr);
        (void)status;  // per-signature results below say more than the overall status
    }
    DKIM_SIGINFO** sigs = nullptr;
    int nsigs = 0;
    if (dkim_getsiglist(handle_, &sigs, &nsigs) != DKIM_STAT_OK || nsigs <= 0) {
        if (failed_) return {{Result::permerror, "", "", "", failure_}};
        return {};
    }
    std::vector<Signature> out;
    for (int i = 0; i < nsigs; ++i) {
        if (dkim_sig_getflags(sigs[i]) & DKIM_SIGFLAG_IGNORE) continue;
        out.push_back(verdict(handle_, sigs[i], body_length_));
    }
    return out;
}

}  // namespace postwarden::dkim
