// config_table.cpp — every configuration key: section, name, default, one line of doc, and how
// its value is parsed and bounded. Adding a key is adding a row here and a line in
// conf/postwarden.conf (tests/unit/config_test.cpp checks the two agree).
#include "common/config_table.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/types.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <vector>

#include "common/auth_results.hpp"
#include "common/inet.hpp"
#include "common/log.hpp"
#include "common/nameservers.hpp"

namespace postwarden::config_detail {

namespace {

template <typename T>
bool parse_number(std::string_view v, T lo, T hi, T* out, std::string* error) {
    T value{};
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), value);
    if (v.empty() || ec != std::errc() || end != v.data() + v.size() || value < lo || value > hi) {
        *error = "expected a whole number from " + std::to_string(lo) + " to " + std::to_string(hi);
        return false;
    }
    *out = value;
    return true;
}

bool parse_bool(std::string_view v, bool* out, std::string* error) {
    if (v == "yes" || v == "true" || v == "on" || v == "1") return *out = true, true;
    if (v == "no" || v == "false" || v == "off" || v == "0") return *out = false, true;
    *error = "expected yes or no";
    return false;
}

bool parse_fail_mode(std::string_view v, std::optional<FailMode>* out, bool allow_empty,
                     std::string* error) {
    if (v == "open") return *out = FailMode::open, true;
    if (v == "closed") return *out = FailMode::closed, true;
    if (v.empty() && allow_empty) return out->reset(), true;
    *error = allow_empty ? "expected open, closed, or empty to inherit [policyd] fail_mode"
                         : "expected open or closed";
    return false;
}

bool parse_choice(std::string_view v, std::initializer_list<std::string_view> choices,
                  std::string* out, std::string* error) {
    for (auto c : choices)
        if (v == c) return *out = std::string(v), true;
    *error = "expected one of:";
    for (auto c : choices)
        *error += " " + std::string(c);
    return false;
}

bool parse_one_endpoint(std::string_view v, Endpoint* out, std::string* error) {
    auto ep = parse_endpoint(v, error);
    if (ep) *out = *ep;
    return ep.has_value();
}

bool parse_optional_endpoint(std::string_view v, std::optional<Endpoint>* out, std::string* error) {
    if (v.empty()) return out->reset(), true;
    Endpoint ep;
    if (!parse_one_endpoint(v, &ep, error)) return false;
    *out = ep;
    return true;
}

// [auth] listen: Dovecot's auth policy client speaks HTTP over TCP only.
bool parse_auth_listen(std::string_view v, std::optional<Endpoint>* out, std::string* error) {
    if (!parse_optional_endpoint(v, out, error)) return false;
    if (*out && (*out)->kind == Endpoint::Kind::unix_socket)
        return *error = "expected host:port or [v6]:port (Dovecot reaches it over HTTP)", false;
    return true;
}

// Sent by Dovecot as a header value: visible ASCII only, so it never needs quoting or trimming.
bool parse_api_key(std::string_view v, std::string* out, std::string* error) {
    for (char c : v)
        if (c < 0x21 || c > 0x7e)
            return *error = "expected visible ASCII characters, no blanks", false;
    if (v.size() > 256) return *error = "longer than 256 characters", false;
    *out = std::string(v);
    return true;
}

// "count/seconds", exactly one window.
bool parse_one_window(std::string_view v, QuotaWindow* out, std::string* error) {
    auto windows = parse_quota_windows(v, error);
    if (!windows) return false;
    if (windows->size() != 1 || (*windows)[0].count > 100000)
        return *error = "expected one window count/seconds, count from 1 to 100000", false;
    *out = (*windows)[0];
    return true;
}

std::vector<std::string_view> split_list(std::string_view v) {
    std::vector<std::string_view> out;
    std::size_t pos = 0;
    while (pos <= v.size()) {
        auto end = v.find_first_of(", \t", pos);
        if (end == std::string_view::npos) end = v.size();
        if (end > pos) out.push_back(v.substr(pos, end - pos));
        pos = end + 1;
    }
    return out;
}

bool parse_endpoint_list(std::string_view v, std::vector<Endpoint>* out, std::string* error) {
    out->clear();
    for (auto item : split_list(v)) {
        Endpoint ep;
        if (!parse_one_endpoint(item, &ep, error)) return false;
        out->push_back(ep);
    }
    if (out->empty()) *error = "at least one address is needed";
    return !out->empty();
}

// libmilter's socket syntax: inet:PORT@HOST, inet6:PORT@HOST, unix:/path (local:/path).
bool parse_milter_socket(std::string_view v, std::string* out, std::string* error) {
    auto colon = v.find(':');
    auto scheme = v.substr(0, colon);
    auto rest = colon == std::string_view::npos ? std::string_view() : v.substr(colon + 1);
    bool ok = false;
    if (scheme == "unix" || scheme == "local") {
        ok = !rest.empty() && rest.front() == '/';
    } else if (scheme == "inet" || scheme == "inet6") {
        unsigned short port = 0;
        auto at = rest.find('@');
        std::string ignored;
        ok = parse_number<unsigned short>(rest.substr(0, at), 1, 65535, &port, &ignored);
    }
    if (!ok)
        *error = "expected inet:PORT@HOST, inet6:PORT@HOST or unix:/path";
    else
        *out = std::string(v);
    return ok;
}

// Header field names (RFC 5322 §3.6.8: printable ASCII but ':'), lower-cased, without repeats.
bool parse_field_names(std::string_view v, std::vector<std::string>* out, std::string* error) {
    out->clear();
    for (auto item : split_list(v)) {
        std::string name;
        for (char ch : item) {
            if (ch < 33 || ch > 126 || ch == ':') {
                *error = "'" + std::string(item) + "' is not a header field name";
                return false;
            }
            name.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
        }
        if (std::find(out->begin(), out->end(), name) == out->end()) out->push_back(name);
    }
    if (out->size() > 64) return *error = "at most 64 names", false;
    return true;
}

// A user or group name as useradd(8) accepts it; checked before it reaches the name service.
bool valid_account_name(std::string_view v) {
    if (v.empty() || v.size() > 32 || v.front() == '-') return false;
    for (char ch : v)
        if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '-' && ch != '.')
            return false;
    return true;
}

// getpwnam_r or getgrnam_r with a buffer grown as asked (a group's member list can be long).
template <typename Entry>
bool account_exists(const std::string& name,
                    int (*lookup)(const char*, Entry*, char*, std::size_t, Entry**)) {
    Entry entry{}, *found = nullptr;
    std::vector<char> buffer(4096);
    int rc;
    while ((rc = lookup(name.c_str(), &entry, buffer.data(), buffer.size(), &found)) == ERANGE &&
           buffer.size() < (1u << 20))
        buffer.resize(buffer.size() * 2);
    return rc == 0 && found;
}

// [policyd] user, [milter] user: must exist now, so a typo stops the start (and --check-config)
// with FILE:LINE instead of surfacing after the sockets are bound.
bool parse_user(std::string_view v, std::string* out, std::string* error) {
    if (v.empty()) return out->clear(), true;
    std::string name(v);
    if (!valid_account_name(v) || !account_exists<passwd>(name, getpwnam_r))
        return *error = "no such user '" + name + "'", false;
    *out = name;
    return true;
}

bool parse_group(std::string_view v, std::string* out, std::string* error) {
    if (v.empty()) return out->clear(), true;
    std::string name(v);
    if (!valid_account_name(v) || !account_exists<group>(name, getgrnam_r))
        return *error = "no such group '" + name + "'", false;
    *out = name;
    return true;
}

// A file mode in octal, as chmod(1) takes it: 0660, 660.
bool parse_mode(std::string_view v, unsigned* out, std::string* error) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), value, 8);
    if (v.empty() || ec != std::errc() || end != v.data() + v.size() || value > 0777) {
        *error = "expected an octal mode from 0000 to 0777, e.g. 0660";
        return false;
    }
    *out = value;
    return true;
}

// A reply text after the action: it must start with an enhanced status code of the right class,
// so a temporary condition can never be configured into a permanent reject.
bool parse_reply(std::string_view v, char status_class, std::string* out, std::string* error) {
    if (v.size() < 6 || v[0] != status_class || v[1] != '.') {
        *error = std::string("must start with an enhanced status code ") + status_class +
                 ".X.Y followed by text";
        return false;
    }
    *out = std::string(v);
    return true;
}

// A setter as a captureless lambda; variadic because bodies contain commas.
#define SET(...)                                                  \
    [](Building& b, std::string_view v, std::string* e) -> bool { \
        auto& c = b.config;                                       \
        (void)c;                                                  \
        (void)e;                                                  \
        __VA_ARGS__                                               \
    }

}  // namespace

const std::vector<Key>& key_table() {
    static const std::vector<Key> table = {
        {{"redis", "address", "127.0.0.1:6379",
          "host:port, [v6]:port, or unix:/path/to/redis.sock; with cluster, seed nodes, comma "
          "separated"},
         SET(if (!parse_endpoint_list(v, &c.redis.seeds, e)) return false;
             c.redis.address = c.redis.seeds.front(); return true;)},
        {{"redis", "password", "", "AUTH password; empty: none"},
         SET(c.redis.password = std::string(v); return true;)},
        {{"redis", "prefix", "pw:", "every key postwarden touches starts with this"},
         SET(if (v.find_first_of("{} \t") != std::string_view::npos) return * e =
                 "must not contain braces or blanks",
             false;
             c.redis.prefix = std::string(v); return true;)},
        {{"redis", "timeout_ms", "250",
          "per command; past it the request is answered per fail_mode"},
         SET(return parse_number(v, 1, 60000, &c.redis.timeout_ms, e);)},
        {{"redis", "sentinels", "",
          "Redis Sentinels (host:port, comma separated) that name the master; empty: use address"},
         SET(if (v.empty()) return c.redis.sentinels.clear(), true;
             return parse_endpoint_list(v, &c.redis.sentinels, e);)},
        {{"redis", "master_name", "", "the master's name in the Sentinels; needed with sentinels"},
         SET(if (v.find_first_of(" \t") != std::string_view::npos) return * e =
                 "must not contain blanks",
             false;
             c.redis.master_name = std::string(v); return true;)},
        {{"redis", "sentinel_password", "", "AUTH password of the Sentinels; empty: none"},
         SET(c.redis.sentinel_password = std::string(v); return true;)},
        {{"redis", "cluster", "no",
          "yes: Redis Cluster, each command sent to the master of its key's slot"},
         SET(return parse_bool(v, &c.redis.cluster, e);)},

        {{"policyd", "listen", "127.0.0.1:10040", "several, comma separated; unix:/path also"},
         SET(return parse_endpoint_list(v, &c.policyd.listen, e);)},
        {{"policyd", "fail_mode", "open",
          "open: DUNNO when Redis can't answer; closed: DEFER_IF_PERMIT"},
         SET(std::optional<FailMode> m; if (!parse_fail_mode(v, &m, false, e)) return false;
             c.policyd.fail_mode = *m; return true;)},
        {{"policyd", "trusted_networks", "127.0.0.0/8, ::1/128",
          "clients treated as outbound (like mynetworks)"},
         SET(auto n = parse_cidr_list(v, e); if (!n) return false; c.policyd.trusted_networks = *n;
             return true;)},
        {{"policyd", "max_connections", "2000",
          "beyond it new connections are refused, logged, counted"},
         SET(return parse_number(v, 1, 1000000, &c.policyd.max_connections, e);)},
        {{"policyd", "idle_timeout", "300",
          "seconds a silent client connection is kept (Postfix reuses them)"},
         SET(return parse_number(v, 1, 86400, &c.policyd.idle_timeout, e);)},
        {{"policyd", "user", "",
          "after binding, switch to this user and its groups; empty: stay as started"},
         SET(return parse_user(v, &c.policyd.user, e);)},
        {{"policyd", "socket_mode", "0660", "permissions of unix: listen sockets (octal)"},
         SET(return parse_mode(v, &c.policyd.socket_mode, e);)},
        {{"policyd", "socket_group", "",
          "group of unix: listen sockets, e.g. postfix; empty: the daemon's group"},
         SET(return parse_group(v, &c.policyd.socket_group, e);)},

        {{"lists", "fail_mode", "", "block/allow lists when Redis fails; empty: inherit [policyd]"},
         SET(return parse_fail_mode(v, &b.lists_fail_mode, true, e);)},

        {{"greylist", "enabled", "yes", "greylist inbound mail from unknown triplets (S1)"},
         SET(return parse_bool(v, &c.greylist.enabled, e);)},
        {{"greylist", "delay", "300", "seconds before a retry of a new triplet is accepted"},
         SET(return parse_number(v, 0L, 86400L, &c.greylist.delay, e);)},
        {{"greylist", "retry_window", "172800", "seconds a first attempt waits for its retry"},
         SET(return parse_number(v, 1L, 31536000L, &c.greylist.retry_window, e);)},
        {{"greylist", "pass_ttl", "3024000",
          "seconds a passed triplet is remembered after it was last seen"},
         SET(return parse_number(v, 1L, 315360000L, &c.greylist.pass_ttl, e);)},
        {{"greylist", "auto_allow_clients", "5",
          "accepted mail of N sender domains lets the client network skip greylisting; 0 = off"},
         SET(return parse_number(v, 0L, 1000000L, &c.greylist.auto_allow_clients, e);)},
        {{"greylist", "trust_authenticated", "yes",
          "S2: SPF pass + aligned valid DKIM is never greylisted (needs the milter)"},
         SET(return parse_bool(v, &c.greylist.trust_authenticated, e);)},
        {{"greylist", "subnet_v4", "24", "triplets use the client's /24 (v4)"},
         SET(return parse_number(v, 8, 32, &c.greylist.subnet_v4, e);)},
        {{"greylist", "subnet_v6", "64", "and its /64 (v6), like postgrey's default"},
         SET(return parse_number(v, 16, 128, &c.greylist.subnet_v6, e);)},
        {{"greylist", "fail_mode", "", "per-check override of [policyd] fail_mode; empty: inherit"},
         SET(return parse_fail_mode(v, &b.greylist_fail_mode, true, e);)},

        {{"quota", "limits", "100/3600, 1000/86400",
          "recipients per window (seconds) for each authenticated user; several windows"},
         SET(auto w = parse_quota_windows(v, e); if (!w) return false; c.quota.limits = *w;
             return true;)},
        {{"quota", "penalty_max", "86400", "S3: ceiling of the throttle extension"},
         SET(return parse_number(v, 0L, 31536000L, &c.quota.penalty_max, e);)},
        {{"quota", "auto_block", "3000/3600",
          "S4: recipients attempted per window that block the user; 0 = off"},
         SET(auto w = parse_quota_windows(v, e); if (!w) return false; c.quota.auto_block = *w;
             return true;)},
        {{"quota", "reserve_ttl", "900",
          "seconds a recipient reserved at RCPT waits for END-OF-MESSAGE"},
         SET(return parse_number(v, 10L, 86400L, &c.quota.reserve_ttl, e);)},
        {{"quota", "fail_mode", "closed",
          "per-check override: an unknown quota state must not open the floodgates"},
         SET(return parse_fail_mode(v, &b.quota_fail_mode, true, e);)},

        {{"auth", "listen", "",
          "Dovecot auth-policy HTTP server, e.g. 127.0.0.1:10041; empty = off"},
         SET(return parse_auth_listen(v, &c.auth.listen, e);)},
        {{"auth", "api_key", "",
          "when set, requests without X-API-Key: <key> get 401 and count nothing"},
         SET(return parse_api_key(v, &c.auth.api_key, e);)},
        {{"auth", "ip_lockout", "10/600",
          "failed logins from one client address per window (seconds) that lock it out"},
         SET(return parse_one_window(v, &c.auth.ip_lockout, e);)},
        {{"auth", "lockout_time", "3600", "seconds a locked client address stays locked"},
         SET(return parse_number(v, 1L, 31536000L, &c.auth.lockout_time, e);)},
        {{"auth", "tarpit_after", "3",
          "failures of one login within ip_lockout's window before it is delayed; 0 = off"},
         SET(return parse_number(v, 0L, 1000L, &c.auth.tarpit_after, e);)},
        {{"auth", "exempt_networks", "127.0.0.0/8, ::1/128",
          "client addresses never locked out (webmail, trusted relays)"},
         SET(auto n = parse_cidr_list(v, e); if (!n) return false; c.auth.exempt_networks = *n;
             return true;)},
        {{"auth", "fail_mode", "open", "Redis unreachable: open = allow, closed = refuse"},
         SET(std::optional<FailMode> m; if (!parse_fail_mode(v, &m, false, e)) return false;
             c.auth.fail_mode = *m; return true;)},

        {{"milter", "listen", "inet:8891@127.0.0.1", "libmilter socket syntax"},
         SET(return parse_milter_socket(v, &c.milter.listen, e);)},
        {{"milter", "authserv_id", "", "Authentication-Results id; empty: the host name"},
         SET(if (auto why = authserv_id_problem(v); !v.empty() && !why.empty()) return * e = why,
             false;
             c.milter.authserv_id = std::string(v); return true;)},
        {{"milter", "dmarc_reject", "reject",
          "what p=reject failures get: reject | quarantine | none"},
         SET(return parse_choice(v, {"reject", "quarantine", "none"}, &c.milter.dmarc_reject, e);)},
        {{"milter", "dmarc_quarantine", "header",
          "what p=quarantine failures get: header | hold | none"},
         SET(return parse_choice(v, {"header", "hold", "none"}, &c.milter.dmarc_quarantine, e);)},
        {{"milter", "enforce_from", "yes", "S8 for authenticated senders"},
         SET(return parse_bool(v, &c.milter.enforce_from, e);)},
        {{"milter", "user", "",
          "after binding, switch to this user and its groups; empty: stay as started"},
         SET(return parse_user(v, &c.milter.user, e);)},
        {{"milter", "socket_mode", "0660", "permissions of a unix: listen socket (octal)"},
         SET(return parse_mode(v, &c.milter.socket_mode, e);)},
        {{"milter", "socket_group", "",
          "group of a unix: listen socket, e.g. postfix; empty: the daemon's group"},
         SET(return parse_group(v, &c.milter.socket_group, e);)},

        {{"dns", "nameservers", "",
          "empty: the system resolver; else host[:port], comma separated"},
         SET(if (auto why = dns::validate_nameservers(v); !why.empty()) return * e = why, false;
             c.dns.nameservers = dns::split_nameservers(v); return true;)},
        {{"dns", "timeout_ms", "2000", "per lookup, retries included"},
         SET(return parse_number(v, 100, 60000, &c.dns.timeout_ms, e);)},
        {{"dns", "cache_entries", "10000",
          "answers kept for their TTL (at most 1 hour), per daemon; 0 = off"},
         SET(return parse_number(v, 0, 1000000, &c.dns.cache_entries, e);)},
        {{"dns", "spf_deadline_ms", "20000",
          "one whole SPF check, every lookup included; past it: temperror"},
         SET(return parse_number(v, 100, 90000, &c.dns.spf_deadline_ms, e);)},

        {{"metrics", "policyd_listen", "", "Prometheus endpoint of policyd, e.g. 127.0.0.1:9140"},
         SET(return parse_optional_endpoint(v, &c.metrics.policyd_listen, e);)},
        {{"metrics", "milter_listen", "", "the milter's, e.g. 127.0.0.1:9141; empty = off"},
         SET(return parse_optional_endpoint(v, &c.metrics.milter_listen, e);)},

        {{"log", "level", "info",
          "least severe level logged: debug, info, notice, warning or error"},
         SET(std::string name; if (!parse_choice(v, {"debug", "info", "notice", "warning", "error"},
                                                 &name, e)) return false;
             c.log.level = *log::parse_level(name); return true;)},

        {{"dkim", "key_dir", "/etc/postwarden/dkim",
          "private keys: <key_dir>/<domain>/<selector>.key, readable only by the milter's user"},
         SET(if (v.empty() || v.front() != '/') return * e = "expected an absolute path", false;
             c.dkim.key_dir = std::string(v); return true;)},
        {{"dkim", "sign_headers",
          "from, to, cc, subject, date, message-id, reply-to, in-reply-to, references, "
          "mime-version, content-type, content-transfer-encoding, list-id, list-unsubscribe",
          "header fields signed, every instance (RFC 6376 §5.4); from is required"},
         SET(if (!parse_field_names(v, &c.dkim.sign_headers, e)) return false;
             for (const auto& n
                  : c.dkim.sign_headers) if (n == "from") return true;
             return * e = "must include from (RFC 6376 §5.4)", false;)},
        {{"dkim", "oversign", "from, to, cc, subject, date, reply-to",
          "each also listed once more in h=, so none can be added (RFC 6376 §8.15)"},
         SET(return parse_field_names(v, &c.dkim.oversign, e);)},

        {{"replies", "blocked_login", "5.7.1 Sender address rejected: Access denied",
          "REJECT text for a login in block:login"},
         SET(return parse_reply(v, '5', &c.replies.blocked_login, e);)},
        {{"replies", "blocked_sender",
          "5.7.1 Sender email or domain is blacklisted from sending through this relay",
          "REJECT text for block:sender and block:domain"},
         SET(return parse_reply(v, '5', &c.replies.blocked_sender, e);)},
        {{"replies", "blocked_network", "5.7.1 Your network is blacklisted",
          "REJECT text for block:net"},
         SET(return parse_reply(v, '5', &c.replies.blocked_network, e);)},
        {{"replies", "blocked_tld",
          "5.7.1 Your domain's TLD is blacklisted from sending through this relay",
          "REJECT text for block:tld"},
         SET(return parse_reply(v, '5', &c.replies.blocked_tld, e);)},
        {{"replies", "greylisted", "4.7.1 Greylisted, please try again in {seconds} seconds",
          "DEFER_IF_PERMIT text; {seconds} is the time left"},
         SET(return parse_reply(v, '4', &c.replies.greylisted, e);)},
        {{"replies", "greylist_passed", "X-Greylist: delayed {seconds} seconds by postwarden",
          "header PREPENDed when a triplet passes; {seconds}: the delay"},
         SET(if (v.find(':') == std::string_view::npos || v.front() == ' ') return * e =
                 "must be a header 'Name: value'",
             false;
             c.replies.greylist_passed = std::string(v); return true;)},
        {{"replies", "throttled", "4.7.1 Sending rate limit exceeded, try again after {time}",
          "DEFER text for a throttled user; {time}: RFC 3339"},
         SET(return parse_reply(v, '4', &c.replies.throttled, e);)},
        {{"replies", "unavailable", "4.3.0 Policy service unavailable",
          "DEFER_IF_PERMIT text when a fail_mode=closed check cannot answer"},
         SET(return parse_reply(v, '4', &c.replies.unavailable, e);)},
    };
    return table;
}

#undef SET

}  // namespace postwarden::config_detail
