// config_types.hpp — the typed configuration (SPEC §2) every program reads: Config and the
// values it holds. Filled by the loader (config.hpp) through the key table (config_table.hpp),
// which include this and not each other.
//
// Entry points: Config, FailMode, QuotaWindow, parse_quota_windows, ConfigKeyInfo.
// Threading: a loaded Config is immutable, shared as shared_ptr<const Config> (config.hpp).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/endpoint.hpp"
#include "common/inet.hpp"
#include "common/log.hpp"

namespace postwarden {

enum class FailMode { open, closed };
std::string_view to_string(FailMode mode);

// One sending-quota window: at most `count` recipients per `seconds`.
struct QuotaWindow {
    long count = 0;
    long seconds = 0;
};
// "100/3600, 1000/86400" → windows; "0" or "" → none (off). Used for [quota] and
// quota:limits:<login>.
std::optional<std::vector<QuotaWindow>> parse_quota_windows(std::string_view text,
                                                            std::string* error);

struct Config {
    struct Redis {
        Endpoint address;
        std::string password;
        std::string prefix;
        int timeout_ms = 0;
        std::vector<Endpoint> sentinels;  // empty: address is the master
        std::string master_name, sentinel_password;
        bool cluster = false;
        std::vector<Endpoint> seeds;  // every `address` given; address is the first
    } redis;
    struct Policyd {
        std::vector<Endpoint> listen;
        FailMode fail_mode = FailMode::open;
        std::vector<Cidr> trusted_networks;
        int max_connections = 0;
        int idle_timeout = 0;
        std::string user;  // switch to it after binding; empty: stay as started (daemon.hpp)
        unsigned socket_mode = 0;  // of unix: listen sockets
        std::string socket_group;  // of unix: listen sockets; empty: the daemon's group
    } policyd;
    struct Lists {
        FailMode fail_mode = FailMode::open;  // resolved: inherits [policyd] fail_mode when unset
    } lists;
    struct Greylist {
        bool enabled = true;
        long delay = 0, retry_window = 0, pass_ttl = 0;
        long auto_allow_clients = 0;
        bool trust_authenticated = true;
        int subnet_v4 = 24, subnet_v6 = 64;
        FailMode fail_mode = FailMode::open;  // resolved
    } greylist;
    struct Quota {
        std::vector<QuotaWindow> limits;
        long penalty_max = 0;
        std::vector<QuotaWindow> auto_block;  // empty: off
        long reserve_ttl = 0;
        FailMode fail_mode = FailMode::closed;  // resolved
    } quota;
    struct Auth {                         // SPEC §8: the Dovecot auth-policy server
        std::optional<Endpoint> listen;   // host:port; empty: off
        std::string api_key;              // empty: no X-API-Key asked
        QuotaWindow ip_lockout{10, 600};  // failures per window that lock a client out
        long lockout_time = 3600;         // seconds
        long tarpit_after = 3;            // failures of a login before its delays; 0: none
        std::vector<Cidr> exempt_networks;
        FailMode fail_mode = FailMode::open;
    } auth;
    struct Milter {
        std::string listen;
        std::string authserv_id;  // resolved: the host name when empty
        std::string dmarc_reject, dmarc_quarantine;
        bool enforce_from = true;
        std::string user;          // as [policyd] user
        unsigned socket_mode = 0;  // of a unix: listen socket
        std::string socket_group;  // of a unix: listen socket; empty: the daemon's group
    } milter;
    struct Dns {
        std::vector<std::string> nameservers;
        int timeout_ms = 0;
        int cache_entries = 0;  // 0: no answer cache
        // One whole SPF check, every lookup included.
        int spf_deadline_ms = 20000;
    } dns;
    struct Metrics {
        std::optional<Endpoint> policyd_listen, milter_listen;
    } metrics;
    struct Log {
        log::Level level = log::Level::info;
    } log;
    struct Dkim {
        std::string key_dir;                    // <key_dir>/<domain>/<selector>.key
        std::vector<std::string> sign_headers;  // lower-case field names, "from" among them
        std::vector<std::string> oversign;      // lower-case field names
    } dkim;
    struct Replies {
        std::string blocked_login, blocked_sender, blocked_network, blocked_tld;
        std::string greylisted, greylist_passed, throttled, unavailable;
    } replies;
};

// One key of the table (config_keys()), for documentation and the shipped-file test.
struct ConfigKeyInfo {
    std::string_view section, name, default_value, doc;
};

namespace config_detail {
// Spaces and tabs off both ends, carriage returns off the end: how the loader reads a line's
// parts and parse_quota_windows its items.
std::string_view trim(std::string_view s);
}  // namespace config_detail

}  // namespace postwarden
