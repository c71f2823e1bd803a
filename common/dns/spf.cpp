// spf.cpp — SPF checks on libspf2 with our own libspf2 DNS layer (see spf.hpp).
//
// libspf2 1.2.10 predates RFC 7208; this file closes the gaps it can from the outside:
//  - record selection (§4.5) is ours (the layer's get_spf hook): TXT only, "v=spf1" followed by
//    a space or nothing, several records = permerror, no record or NXDOMAIN = none;
//  - the check starts at our code, not SPF_request_query_mailfrom, so loopback clients get no
//    free pass and the top-level outcome (none/temperror/permerror) is mapped exactly;
//  - the void-lookup limit (§4.6.4) and the DNS-lookup limit across include (§4.6.4) are
//    counted in the DNS layer (class Layer), which libspf2 does not do, and so is the limit on
//    the time of the whole check (§4.6.4): past its deadline no lookup is made, and the
//    result is temperror;
//  - records are checked against the §4.6 ABNF and rewritten for libspf2 (rewrite_record):
//    CIDR /0, modifiers before mechanisms, unknown modifiers, syntax errors libspf2 lets pass;
//  - names that cannot be checked (§4.3) give none before any lookup;
//  - the default explanation is expanded only for a fail (libspf2 would for every result but
//    pass, to build a comment nobody reads: make_server, fail_explanation).
//
// Threading: every check owns its SPF_server_t, request, response and DNS layer; the only
// process-wide state is libspf2's log handlers, set once.
#include "common/dns/spf.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>

#include "common/dns/spf_record.hpp"
#include "common/idna.hpp"
#include "common/inet.hpp"
#include "common/log.hpp"

extern "C" {
#include <spf2/spf.h>
}

namespace postwarden::spf {
namespace {

// Our default explanation for fail (libspf2's points at the defunct openspf.org).
constexpr const char* default_explanation =
    "Please%_see%_https://www.open-spf.org/Why?s=mfrom;id=%{S};ip=%{I};r=%{R}";

// libspf2 reports assertion failures through SPF_error_handler, which must not return: log
// once, then abort as libspf2 itself would. Its chatter (warnings, info, debug) is dropped:
// per-check problems reach the caller as results.
// GNU spelling: clang makes noreturn part of the function type, as libspf2 declares it.
__attribute__((noreturn)) void on_libspf2_error(const char* file, int line, const char* message) {
    log::error(std::string("libspf2 internal error at ") + (file ? file : "?") + ":" +
               std::to_string(line) + ": " + (message ? message : ""));
    std::abort();
}

void init_libspf2() {
    static std::once_flag once;
    std::call_once(once, [] {
        SPF_error_handler = on_libspf2_error;
        SPF_warning_handler = nullptr;
        SPF_info_handler = nullptr;
        SPF_debug_handler = nullptr;
    });
}

struct ServerDeleter {
    void operator()(SPF_server_t* server) const { SPF_server_free(server); }
};
struct RequestDeleter {
    void operator()(SPF_request_t* request) const { SPF_request_free(request); }
};
struct ResponseDeleter {
    void operator()(SPF_response_t* response) const { SPF_response_free(response); }
};
struct RecordDeleter {
    void operator()(SPF_record_t* record) const { SPF_record_free(record); }
};
struct MacroDeleter {
    void operator()(SPF_macro_t* macro) const { SPF_macro_free(macro); }
};
using ServerPtr = std::unique_ptr<SPF_server_t, ServerDeleter>;
using RequestPtr = std::unique_ptr<SPF_request_t, RequestDeleter>;
using ResponsePtr = std::unique_ptr<SPF_response_t, ResponseDeleter>;
using RecordPtr = std::unique_ptr<SPF_record_t, RecordDeleter>;
using MacroPtr = std::unique_ptr<SPF_macro_t, MacroDeleter>;

// What libspf2 writes as the explanation when its server has none (spf_get_exp.c).
constexpr const char* libspf2_no_explanation = "SPF failure: no explanation available";

bool printable_ascii(std::string_view text) {
    return std::all_of(text.begin(), text.end(),
                       [](unsigned char c) { return c > 0x20 && c < 0x7f; });
}

// RFC 7208 §4.3: a malformed or single-label domain gives none without a lookup. Domain
// literals ([1.2.3.4]) and 8-bit names are not checkable either.
bool checkable_domain(std::string_view domain) {
    if (domain.ends_with('.')) domain.remove_suffix(1);
    if (domain.empty() || domain.size() > 253 || !printable_ascii(domain)) return false;
    if (domain.find_first_of("[]@\\\"") != std::string_view::npos) return false;
    int labels = 0;
    size_t start = 0;
    while (true) {
        size_t dot = domain.find('.', start);
        size_t length = (dot == std::string_view::npos ? domain.size() : dot) - start;
        if (length == 0 || length > 63) return false;
        ++labels;
        if (dot == std::string_view::npos) break;
        start = dot + 1;
    }
    return labels >= 2;
}

// Local parts are only ever macro-expanded; refuse control characters and absurd lengths,
// which no SMTP server would have accepted.
bool usable_local_part(std::string_view local_part) {
    if (local_part.size() > 256) return false;
    return std::none_of(local_part.begin(), local_part.end(),
                        [](unsigned char c) { return c < 0x20 || c == 0x7f; });
}

// Sets the client address; IPv4-mapped IPv6 addresses are checked as IPv4 (§5).
bool set_client_ip(SPF_request_t* request, std::string_view client_ip) {
    if (client_ip.size() > INET6_ADDRSTRLEN) return false;
    std::string text(client_ip);
    in_addr v4{};
    in6_addr v6{};
    if (inet_pton(AF_INET, text.c_str(), &v4) == 1) return SPF_request_set_ipv4(request, v4) == 0;
    if (inet_pton(AF_INET6, text.c_str(), &v6) != 1) return false;
    if (IN6_IS_ADDR_V4MAPPED(&v6)) {
        std::memcpy(&v4, v6.s6_addr + 12, 4);
        return SPF_request_set_ipv4(request, v4) == 0;
    }
    return SPF_request_set_ipv6(request, v6) == 0;
}

// inet_ntop's spelling, by our formatter (glibc's formats IPv4 with sprintf).
std::string client_address_text(const SPF_request_t* request) {
    IpAddress address;
    address.v6 = request->client_ver != AF_INET;
    if (address.v6)
        std::memcpy(address.bytes.data(), &request->ipv6, 16);
    else
        std::memcpy(address.bytes.data(), &request->ipv4, 4);
    return address.to_string();
}

Result from_libspf2(SPF_result_t result) {
    switch (result) {
        case SPF_RESULT_NEUTRAL:
            return Result::neutral;
        case SPF_RESULT_PASS:
            return Result::pass;
        case SPF_RESULT_FAIL:
            return Result::fail;
        case SPF_RESULT_SOFTFAIL:
            return Result::softfail;
        case SPF_RESULT_NONE:
            return Result::none;
        case SPF_RESULT_TEMPERROR:
            return Result::temperror;
        case SPF_RESULT_PERMERROR:
        case SPF_RESULT_INVALID:
            break;
    }
    return Result::permerror;
}

// ---- the DNS layer ------------------------------------------------------------------------

constexpr int max_dns_lookups = 10;  // §4.6.4: terms that query DNS, across include/redirect
constexpr int max_void_lookups = 2;  // §4.6.4: lookups that found nothing
constexpr int max_ptr_names = 10;    // §5.5: PTR names looked at, the rest ignored

// A libspf2 DNS layer for one check. lookup() answers libspf2's A/AAAA/MX/PTR/TXT queries from
// dns::Resolver; get_spf() selects and compiles the SPF record of a domain. It also counts what
// libspf2 does not: DNS-querying terms across include, and void lookups. Past either limit it
// answers TRY_AGAIN, which stops libspf2's evaluation at once, and evaluate() turns the result
// into permerror.
class Layer {
  public:
    explicit Layer(const dns::Resolver& resolver) : resolver_(resolver) {
        layer_.destroy = nullptr;  // owned here, so SPF_server_free leaves it alone
        layer_.lookup = &Layer::lookup;
        layer_.get_spf = &Layer::get_spf;
        layer_.name = "postwarden";
        layer_.hook = this;
    }
    Layer(const Layer&) = delete;
    Layer& operator=(const Layer&) = delete;

    SPF_dns_server_t* libspf2_layer() { return &layer_; }
    // How the first record lookup (the checked domain's own) ended, when it did not yield one.
    std::optional<Result> top_level_result() const { return top_level_result_; }
    bool limit_exceeded() const { return limit_exceeded_; }
    // The client's address as text, the answer to an any-address lookup (CIDR /0).
    void set_client_address(std::string address) { client_address_ = std::move(address); }
    // Answers only from the DNS cache (Checker::check_mailfrom_cached); missed(): some answer
    // was not there, so the check's result means nothing.
    void set_cache_only(bool cache_only) { cache_only_ = cache_only; }
    bool missed() const { return missed_; }
    // No lookup waits on the network past `deadline`; deadline_passed(): one would have.
    void set_deadline(std::chrono::steady_clock::time_point deadline) { deadline_ = deadline; }
    bool deadline_passed() const { return deadline_passed_; }
    // Some record fetched used the sender's local part (a %{l} or %{s} macro).
    bool local_part_used() const { return local_part_used_; }
    // Forgets the last check's counts, for the next check.
    void reset() {
        local_part_used_ = false;
        record_fetches_ = dns_terms_ = void_lookups_ = 0;
        limit_exceeded_ = cache_only_ = missed_ = deadline_passed_ = false;
        deadline_ = std::chrono::steady_clock::time_point::max();
        top_level_result_.reset();
        client_address_.clear();
        pending_hosts_.clear();
    }

  private:
    static Layer& self(SPF_dns_server_t* layer) { return *static_cast<Layer*>(layer->hook); }

    static SPF_dns_rr_t* lookup(SPF_dns_server_t* layer, const char* domain, ns_type type,
                                int /*should_cache*/) {
        try {
            return self(layer).answer(domain, type);
        } catch (...) {  // nothing may unwind through libspf2
            return SPF_dns_rr_new_init(layer, domain, type, 0, TRY_AGAIN);
        }
    }

    static SPF_errcode_t get_spf(SPF_server_t* server, SPF_request_t* request,
                                 SPF_response_t* response, SPF_record_t** record) {
        try {
            return self(server->resolver).fetch_record(server, request, response, record);
        } catch (...) {
            return SPF_response_add_error(response, SPF_E_DNS_ERROR, "%s", "internal error");
        }
    }

    SPF_dns_rr_t* answer(const char* domain, ns_type type);
    SPF_errcode_t fetch_record(SPF_server_t* server, SPF_request_t* request,
                               SPF_response_t* response, SPF_record_t** record);
    bool count_term(const char* domain, ns_type type);
    void note_answer(ns_type type, const dns::Answer& answer);
    dns::Answer query(const std::string& name, dns::Type type);

    SPF_dns_server_t layer_{};
    const dns::Resolver& resolver_;
    int record_fetches_ = 0;
    int dns_terms_ = 0;
    int void_lookups_ = 0;
    bool limit_exceeded_ = false;
    bool cache_only_ = false;
    bool missed_ = false;
    bool local_part_used_ = false;
    std::chrono::steady_clock::time_point deadline_ = std::chrono::steady_clock::time_point::max();
    bool deadline_passed_ = false;
    std::optional<Result> top_level_result_;
    std::string client_address_;
    // Host names whose address lookups libspf2 makes next as part of one mx or ptr term.
    std::deque<std::string> pending_hosts_;
};

std::optional<dns::Type> type_of(ns_type type) {
    switch (type) {
        case ns_t_a:
            return dns::Type::a;
        case ns_t_aaaa:
            return dns::Type::aaaa;
        case ns_t_mx:
            return dns::Type::mx;
        case ns_t_ptr:
            return dns::Type::ptr;
        case ns_t_txt:
            return dns::Type::txt;
        default:
            return std::nullopt;
    }
}

int herrno_of(dns::Status status) {
    switch (status) {
        case dns::Status::ok:
            return NETDB_SUCCESS;
        case dns::Status::nxdomain:
            return HOST_NOT_FOUND;
        case dns::Status::nodata:
            return NO_DATA;
        case dns::Status::temp_error:
            break;
    }
    return TRY_AGAIN;
}

bool same_name(std::string_view a, std::string_view b) {
    if (a.ends_with('.')) a.remove_suffix(1);
    if (b.ends_with('.')) b.remove_suffix(1);
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

// Counts a DNS-querying term, unless this lookup is the address lookup of a host named by the
// mx or ptr term before it (libspf2 makes those in order, right after the MX/PTR answer).
// TXT lookups here are exp= explanations, which §4.6.4 does not count.
bool Layer::count_term(const char* domain, ns_type type) {
    if (type == ns_t_txt) return false;
    if ((type == ns_t_a || type == ns_t_aaaa) && !pending_hosts_.empty() &&
        same_name(pending_hosts_.front(), domain)) {
        pending_hosts_.pop_front();
        return false;
    }
    pending_hosts_.clear();
    if (++dns_terms_ > max_dns_lookups) limit_exceeded_ = true;
    return true;
}

void Layer::note_answer(ns_type type, const dns::Answer& answer) {
    if (type == ns_t_mx)
        for (const auto& mx : answer.mx)
            pending_hosts_.push_back(mx.host);
    if (type == ns_t_ptr)
        for (size_t i = 0; i < answer.names.size() && i < max_ptr_names; ++i)
            pending_hosts_.push_back(answer.names[i]);
}

// Copies one record into slot `index` of a libspf2 RR set.
bool store(SPF_dns_rr_t* rr, int index, const void* data, size_t size) {
    if (SPF_dns_rr_buf_realloc(rr, index, size) != SPF_E_SUCCESS) return false;
    std::memcpy(rr->rr[index], data, size);
    return true;
}

bool store_string(SPF_dns_rr_t* rr, int index, const std::string& text) {
    return store(rr, index, text.c_str(), text.size() + 1);
}

// TXT answers through lookup() are exp= explanations (§6.2), where a space is literal text;
// libspf2's macro compiler would turn each space into '%' and stop expanding, so spaces go to
// it as the %_ macro, which expands to a space.
std::string explanation_macro(const std::string& text) {
    std::string macro;
    for (char c : text)
        macro += c == ' ' ? std::string("%_") : std::string(1, c);
    return macro;
}

// Fills an RR set from our answer: addresses as in_addr/in6_addr, names and texts as strings.
void fill(SPF_dns_rr_t* rr, ns_type type, const dns::Answer& answer) {
    int count = 0;
    auto add = [&](bool ok) { count += ok ? 1 : 0; };
    for (const auto& address : answer.addresses) {
        unsigned char binary[16];
        int family = type == ns_t_a ? AF_INET : AF_INET6;
        if (inet_pton(family, address.c_str(), binary) == 1)
            add(store(rr, count, binary, family == AF_INET ? 4 : 16));
    }
    for (const auto& mx : answer.mx)
        add(store_string(rr, count, mx.host));
    for (size_t i = 0; i < answer.names.size() && i < max_ptr_names; ++i)
        add(store_string(rr, count, answer.names[i]));
    for (const auto& text : answer.texts)
        add(store_string(rr, count, explanation_macro(text)));
    rr->num_rr = count;
}

// §7.3: an expanded name over 253 characters loses labels from the left until it fits.
std::string fit_domain(std::string name) {
    while (name.size() > 253) {
        auto dot = name.find('.');
        if (dot == std::string::npos) break;
        name.erase(0, dot + 1);
    }
    return name;
}

// Strips the any-address marker (see any_address_suffix); true if it was there.
bool strip_any_address(std::string* name) {
    if (name->size() < any_address_suffix.size() ||
        !same_name(std::string_view(*name).substr(name->size() - any_address_suffix.size()),
                   any_address_suffix))
        return false;
    name->resize(name->size() - any_address_suffix.size());
    return true;
}

// In a cache-only check, the first answer the cache lacks ends the check as a temporary error,
// and nothing more is looked up: the caller throws the result away and checks again for real.
// Otherwise a lookup that ends (or would start) past the deadline ends the check the same way,
// and every later one answers at once.
dns::Answer Layer::query(const std::string& name, dns::Type type) {
    if (!cache_only_) {
        if (deadline_passed_)
            return dns::Answer{dns::Status::temp_error, {}, {}, {}, {}, {}, "deadline"};
        auto answer = resolver_.query(name, type, deadline_);
        if (answer.status == dns::Status::temp_error &&
            std::chrono::steady_clock::now() >= deadline_)
            deadline_passed_ = true;
        return answer;
    }
    if (!missed_)
        if (auto kept = resolver_.cached(name, type)) return *kept;
    missed_ = true;
    return dns::Answer{dns::Status::temp_error, {}, {}, {}, {}, {}, "not in the cache"};
}

SPF_dns_rr_t* Layer::answer(const char* domain, ns_type type) {
    bool term = count_term(domain, type);
    auto dns_type = type_of(type);
    if (limit_exceeded_ || !dns_type)
        return SPF_dns_rr_new_init(&layer_, domain, type, 0, limit_exceeded_ ? TRY_AGAIN : NO_DATA);
    std::string name = domain;
    bool any_address = strip_any_address(&name);
    dns::Answer answer = query(fit_domain(name), *dns_type);
    bool empty = answer.status == dns::Status::nxdomain || answer.status == dns::Status::nodata;
    if (term && empty && ++void_lookups_ > max_void_lookups) {
        limit_exceeded_ = true;
        return SPF_dns_rr_new_init(&layer_, domain, type, 0, TRY_AGAIN);
    }
    if (any_address && type == ns_t_mx)
        for (auto& mx : answer.mx)
            mx.host += any_address_suffix;
    if (any_address && !answer.addresses.empty()) answer.addresses = {client_address_};
    note_answer(type, answer);
    SPF_dns_rr_t* rr = SPF_dns_rr_new_init(&layer_, domain, type, 0, herrno_of(answer.status));
    if (rr && answer.status == dns::Status::ok) fill(rr, type, answer);
    return rr;
}

// Whether a record has a macro of the sender's local part: %{l} or %{s}, any case and form
// (§7.2). Without one, nothing in the record depends on it. A "%{" that is not a macro at all
// counts too (cautious; such a record is a permerror anyway).
bool uses_local_part(std::string_view record) {
    for (auto at = record.find("%{"); at != std::string_view::npos;
         at = record.find("%{", at + 2)) {
        if (at + 2 >= record.size()) return true;
        char letter = static_cast<char>(std::tolower(static_cast<unsigned char>(record[at + 2])));
        if (letter == 'l' || letter == 's') return true;
    }
    return false;
}

// RFC 7208 §4.5: among the TXT records, those that are "v=spf1" alone or followed by a space.
std::vector<const std::string*> spf_records(const dns::Answer& answer) {
    std::vector<const std::string*> records;
    for (const auto& text : answer.texts) {
        if (text.size() < 6 || strncasecmp(text.c_str(), "v=spf1", 6) != 0) continue;
        if (text.size() == 6 || text[6] == ' ') records.push_back(&text);
    }
    return records;
}

// libspf2's get_spf hook, for the checked domain and for every include/redirect target. Errors
// follow libspf2's convention: SPF_E_DNS_ERROR means temperror, any other error permerror
// (RFC 7208 makes a missing record behind include or redirect a permerror too).
SPF_errcode_t Layer::fetch_record(SPF_server_t* server, SPF_request_t* request,
                                  SPF_response_t* response, SPF_record_t** record) {
    const char* domain = request->cur_dom;
    bool top_level = record_fetches_++ == 0;
    if (!top_level && (pending_hosts_.clear(), ++dns_terms_ > max_dns_lookups))
        limit_exceeded_ = true;
    if (limit_exceeded_)
        return SPF_response_add_error(response, SPF_E_BIG_DNS, "%s", "too many DNS lookups");
    auto fail = [&](Result result, SPF_errcode_t code, const char* why) {
        if (top_level) top_level_result_ = result;
        return SPF_response_add_error(response, code, "%s: %s", why, domain);
    };
    if (!checkable_domain(domain)) return fail(Result::none, SPF_E_NOT_SPF, "bad domain");
    dns::Answer answer = query(fit_domain(domain), dns::Type::txt);
    if (answer.status == dns::Status::temp_error)
        return fail(Result::temperror, SPF_E_DNS_ERROR, "temporary DNS failure");
    auto records = spf_records(answer);
    if (records.empty()) return fail(Result::none, SPF_E_NOT_SPF, "no SPF record");
    if (records.size() > 1)
        return fail(Result::permerror, SPF_E_MULTIPLE_RECORDS, "several SPF records");
    if (uses_local_part(*records.front())) local_part_used_ = true;
    auto rewritten = rewrite_record(*records.front(), request->client_ver == AF_INET);
    if (!rewritten) return fail(Result::permerror, SPF_E_SYNTAX, "syntax error in record");
    SPF_errcode_t err = SPF_record_compile(server, response, record, rewritten->c_str());
    if (err != SPF_E_SUCCESS) {
        if (*record) SPF_record_free(*record);
        *record = nullptr;
        return fail(Result::permerror, err == SPF_E_DNS_ERROR ? SPF_E_SYNTAX : err, "bad record");
    }
    return SPF_E_SUCCESS;
}

// Builds a libspf2 server whose every lookup goes through `layer`, with the RFC 7208 limits.
ServerPtr make_server(SPF_dns_server_t* layer, MacroPtr* explanation) {
    ServerPtr server(SPF_server_new_dns(layer, 0));
    if (!server) return nullptr;
    // libspf2 tests "more than max" before each mechanism; our layer enforces the exact limit
    // of 10 across include as well (class Layer), so this is only a backstop.
    SPF_server_set_max_dns_mech(server.get(), max_dns_lookups);
    SPF_server_set_max_dns_mx(server.get(), 10);
    SPF_server_set_max_dns_ptr(server.get(), 10);
    SPF_response_t* messages = nullptr;
    SPF_server_set_explanation(server.get(), default_explanation, &messages);
    if (messages) SPF_response_free(messages);
    // Taken back at once: libspf2 expands the server's explanation for every result but pass
    // (for its SMTP comment), 5k instructions a check, though only a fail's is ever read. With
    // none, it writes a fixed text; evaluate() expands ours for a fail.
    explanation->reset(server->explanation);
    server->explanation = nullptr;
    return server;
}

// A fail's explanation: the domain's exp= text as libspf2 found it, else our default (make_server)
// expanded for this request.
std::string fail_explanation(SPF_server_t* server, SPF_request_t* request, SPF_response_t* response,
                             SPF_macro_t* ours) {
    const char* found = SPF_response_get_explanation(response);
    if (found && std::strcmp(found, libspf2_no_explanation) != 0) return found;
    std::size_t size = 256;
    char* buf = static_cast<char*>(std::calloc(size, 1));
    if (!ours || !buf) {
        std::free(buf);
        return found ? found : "";
    }
    // The macro's data follows its header (libspf2's SPF_macro_data()).
    auto* data = reinterpret_cast<SPF_data_t*>(reinterpret_cast<char*>(ours) + sizeof(SPF_macro_t));
    SPF_errcode_t err =
        SPF_record_expand_data(server, request, response, data, ours->macro_len, &buf, &size);
    std::string text = err == SPF_E_SUCCESS && buf ? buf : (found ? found : "");
    std::free(buf);
    return text;
}

// Evaluates the record of request->cur_dom: what SPF_request_query_mailfrom does, minus its
// loopback free pass and with our mapping of the top-level record lookup.
Outcome evaluate(SPF_server_t* server, SPF_request_t* request, Layer* layer,
                 SPF_macro_t* explanation, Outcome outcome) {
    ResponsePtr response(SPF_response_new(request));
    if (!response) return Outcome{Result::temperror, outcome.domain, {}};
    SPF_record_t* raw_record = nullptr;
    SPF_errcode_t err = SPF_server_get_record(server, request, response.get(), &raw_record);
    RecordPtr record(raw_record);
    if (err != SPF_E_SUCCESS || !record) {
        outcome.result = layer->deadline_passed()
                             ? Result::temperror
                             : layer->top_level_result().value_or(Result::permerror);
        return outcome;
    }
    response->spf_record_exp = record.get();
    SPF_record_interpret(record.get(), request, response.get(), 0);
    outcome.result = layer->deadline_passed()  ? Result::temperror
                     : layer->limit_exceeded() ? Result::permerror
                                               : from_libspf2(SPF_response_result(response.get()));
    if (outcome.result == Result::fail)
        outcome.explanation = fail_explanation(server, request, response.get(), explanation);
    return outcome;
}

}  // namespace

// libspf2 servers with their layers, kept between checks: making a server (it compiles the
// default explanation) cost about 4k instructions per check. libspf2 does not change a server
// while it answers a request; the layer's counts are reset for each check. A slot serves one
// check at a time; idle slots wait here (as many as checks ran at once).
class ServerPool {
  public:
    explicit ServerPool(dns::Resolver resolver) : resolver_(std::move(resolver)) {}

    bool has_cache() const { return resolver_.options().cache != nullptr; }

    struct Slot {
        explicit Slot(const dns::Resolver& resolver)
            : layer(resolver), server(make_server(layer.libspf2_layer(), &explanation)) {}
        Layer layer;
        MacroPtr explanation;  // our default, kept out of the server (make_server)
        ServerPtr server;
    };

    std::unique_ptr<Slot> take() {
        {
            std::lock_guard lock(mutex_);
            if (!idle_.empty()) {
                auto slot = std::move(idle_.back());
                idle_.pop_back();
                slot->layer.reset();
                return slot;
            }
        }
        auto slot = std::make_unique<Slot>(resolver_);
        if (!slot->server) return nullptr;
        return slot;
    }
    void give(std::unique_ptr<Slot> slot) {
        std::lock_guard lock(mutex_);
        if (idle_.size() < 64) idle_.push_back(std::move(slot));
    }

  private:
    const dns::Resolver resolver_;
    std::mutex mutex_;
    std::vector<std::unique_ptr<Slot>> idle_;
};

// One check on a slot of the pool: what Checker::check does once it has a server.
static Outcome run_check(ServerPool::Slot& slot, std::string_view client_ip,
                         std::string_view local_part, std::string_view domain,
                         std::string_view helo, Outcome outcome) {
    Layer& layer = slot.layer;
    SPF_server_t* server = slot.server.get();
    RequestPtr request(SPF_request_new(server));
    if (!request) return Outcome{Result::temperror, outcome.domain, {}};
    if (!set_client_ip(request.get(), client_ip)) return outcome;
    // %{h} expands to the HELO name, whatever it is (§7.3); one that cannot even be printed
    // becomes "unknown" rather than control characters in DNS queries.
    bool printable_helo = helo.size() <= 255 && std::all_of(helo.begin(), helo.end(), [](char c) {
                              return c >= 0x20 && c < 0x7f;
                          });
    std::string helo_name = printable_helo && !helo.empty() ? std::string(helo) : "unknown";
    SPF_request_set_helo_dom(request.get(), helo_name.c_str());
    std::string identity = std::string(local_part) + "@" + std::string(domain);
    if (SPF_request_set_env_from(request.get(), identity.c_str()) != 0 || !request->env_from_dp)
        return Outcome{Result::temperror, outcome.domain, {}};
    request->cur_dom = request->env_from_dp;
    layer.set_client_address(client_address_text(request.get()));
    return evaluate(server, request.get(), &layer, slot.explanation.get(), std::move(outcome));
}

std::string_view to_string(Result result) {
    switch (result) {
        case Result::none:
            return "none";
        case Result::neutral:
            return "neutral";
        case Result::pass:
            return "pass";
        case Result::fail:
            return "fail";
        case Result::softfail:
            return "softfail";
        case Result::temperror:
            return "temperror";
        case Result::permerror:
            return "permerror";
    }
    return "permerror";
}

Checker::Checker(const dns::ResolverOptions& options, std::chrono::milliseconds deadline)
    : pool_(std::make_shared<ServerPool>(dns::Resolver(options))), deadline_(deadline) {
    init_libspf2();
}

Checker::Checker(dns::Resolver resolver, std::chrono::milliseconds deadline)
    : pool_(std::make_shared<ServerPool>(std::move(resolver))), deadline_(deadline) {
    init_libspf2();
}

Outcome Checker::check_mailfrom(std::string_view client_ip, std::string_view sender,
                                std::string_view helo) const {
    return check_mailfrom(client_ip, sender, helo, Clock::now() + deadline_);
}

Outcome Checker::check_mailfrom(std::string_view client_ip, std::string_view sender,
                                std::string_view helo, Clock::time_point deadline) const {
    return *mailfrom(client_ip, sender, helo, false, deadline);
}

std::optional<Outcome> Checker::check_mailfrom_cached(std::string_view client_ip,
                                                      std::string_view sender,
                                                      std::string_view helo) const {
    if (!pool_->has_cache()) return std::nullopt;
    return mailfrom(client_ip, sender, helo, true, Clock::time_point::max());
}

Outcome Checker::check_helo(std::string_view client_ip, std::string_view helo) const {
    return check_helo(client_ip, helo, Clock::now() + deadline_);
}

Outcome Checker::check_helo(std::string_view client_ip, std::string_view helo,
                            Clock::time_point deadline) const {
    return *check(client_ip, "postmaster", helo, helo, false, deadline);
}

std::string_view mailfrom_domain(std::string_view sender, std::string_view helo) {
    if (sender.empty()) return helo;
    auto at = sender.rfind('@');
    return at == std::string_view::npos ? sender : sender.substr(at + 1);
}

std::optional<Outcome> Checker::mailfrom(std::string_view client_ip, std::string_view sender,
                                         std::string_view helo, bool cache_only,
                                         Clock::time_point deadline) const {
    auto at = sender.rfind('@');
    std::string_view local_part = at == std::string_view::npos ? "" : sender.substr(0, at);
    return check(client_ip, local_part.empty() ? "postmaster" : local_part,
                 mailfrom_domain(sender, helo), helo, cache_only, deadline);
}

std::optional<Outcome> Checker::check(std::string_view client_ip, std::string_view local_part,
                                      std::string_view domain, std::string_view helo,
                                      bool cache_only, Clock::time_point deadline) const {
    // RFC 8616 §4: internationalized names are checked, and expanded by macros, as A-labels;
    // one without an A-label spelling stays as it is, and checkable_domain() refuses it (none).
    std::string domain_a, helo_a;
    if (!is_ascii(domain)) domain = domain_a = to_a_label(domain).value_or(std::string(domain));
    if (!is_ascii(helo)) helo = helo_a = to_a_label(helo).value_or(std::string(helo));
    Outcome outcome{Result::none, std::string(domain), {}};
    if (!checkable_domain(domain)) return outcome;
    if (!usable_local_part(local_part)) {
        outcome.local_part_used = true;  // another local part may be usable
        return outcome;
    }

    auto slot = pool_->take();
    if (!slot && cache_only) return std::nullopt;
    if (!slot) return Outcome{Result::temperror, outcome.domain, {}};
    slot->layer.set_cache_only(cache_only);
    slot->layer.set_deadline(deadline);
    auto outcome_of = run_check(*slot, client_ip, local_part, domain, helo, std::move(outcome));
    bool missed = slot->layer.missed();
    outcome_of.local_part_used = slot->layer.local_part_used();
    pool_->give(std::move(slot));
    if (missed) return std::nullopt;
    return outcome_of;
}

}  // namespace postwarden::spf
