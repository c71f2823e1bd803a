// greylist.cpp — `postwarden greylist stats`: what common/redis/lua/greylist.lua has stored. A
// triplet key <prefix>grey:{<identity>}:<sender>:<rcpt> holds "f<first-ms>" while it waits for its
// retry and "p" once passed; the SET <prefix>awl-domains:{<identity>} holds the sender domains of
// accepted mail that passed greylisting from a client network, and from auto_allow_clients of
// them on that network skips greylisting. These keys are not indexed anywhere,
// so the command walks the keyspace with SCAN MATCH ... COUNT (never KEYS, which would stall
// Redis): O(keys in the database), in steps that let other clients in between.
#include <algorithm>

#include "admin/commands.hpp"
#include "admin/json.hpp"

namespace postwarden::admin {

namespace {

// Keys per SCAN step: large enough to be quick, small enough that each step is short for Redis.
constexpr const char* scan_count = "1000";

// The prefix as a literal inside a MATCH pattern.
std::string glob_escape(std::string_view text) {
    std::string out;
    for (char c : text) {
        if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out.push_back('\\');
        out.push_back(c);
    }
    return out;
}

// scan_values on one master.
template <typename Each>
long long scan_master(Store& store, std::size_t master, const std::string& pattern,
                      const char* read, Each each) {
    std::string cursor = "0";
    long long seen = 0;
    do {
        auto page = store.run_on(master, {"SCAN", cursor, "MATCH", pattern, "COUNT", scan_count});
        if (page.type != redis::Value::Type::array || page.elements.size() != 2)
            throw Failure(exit_redis_error, "unexpected reply to SCAN");
        cursor = page.elements[0].str;
        auto keys = strings_of(page.elements[1]);
        if (keys.empty()) continue;
        std::vector<std::vector<std::string>> gets;
        for (const auto& k : keys)
            gets.push_back({read, k});
        each(keys, store.batch(std::move(gets)));
        seen += static_cast<long long>(keys.size());
    } while (cursor != "0");
    return seen;
}

// Calls each(keys, values) for every key matching pattern, with the answers of `read` (GET or
// SCARD) for each (nil or 0 for a key that expired between the SCAN and the read). On a Redis
// Cluster every master is walked in turn, each holding its slots' keys.
template <typename Each>
long long scan_values(Store& store, const std::string& pattern, const char* read, Each each) {
    long long seen = 0;
    for (std::size_t master = 0, n = store.masters(); master < n; ++master)
        seen += scan_master(store, master, pattern, read, each);
    return seen;
}
struct GreylistStats {
    long long pending = 0, due = 0, passed = 0, other = 0;
    long long clients = 0;
    std::vector<std::pair<std::string, long long>> allowed;  // identity, sender domains
};

// "<prefix>awl-domains:{203.0.113.0/24}" → "203.0.113.0/24".
std::string identity_of(std::string_view key, std::size_t prefix_size) {
    key.remove_prefix(prefix_size);
    if (key.size() >= 2 && key.front() == '{' && key.back() == '}')
        key = key.substr(1, key.size() - 2);
    return std::string(key);
}

}  // namespace

Output greylist_stats(Context& ctx) {
    const auto& g = ctx.config.greylist;
    GreylistStats s;
    auto grey = glob_escape(ctx.store.key("grey:")) + "*";
    scan_values(ctx.store, grey, "GET", [&](const auto&, const std::vector<redis::Value>& values) {
        for (const auto& v : values) {
            if (v.type != redis::Value::Type::string) continue;  // expired meanwhile
            if (v.str == "p") {
                ++s.passed;
            } else if (v.str.size() > 1 && v.str[0] == 'f') {
                ++s.pending;
                // Waited out the delay: the next retry passes.
                if (std::stoll(v.str.substr(1)) + g.delay * 1000 <= ctx.now_ms) ++s.due;
            } else {
                ++s.other;
            }
        }
    });
    auto awl_prefix = ctx.store.key("awl-domains:");
    scan_values(ctx.store, glob_escape(awl_prefix) + "*", "SCARD",
                [&](const std::vector<std::string>& keys, const std::vector<redis::Value>& values) {
                    for (std::size_t i = 0; i < keys.size(); ++i) {
                        if (values[i].type != redis::Value::Type::integer) continue;
                        long long n = values[i].integer;
                        if (n == 0) continue;  // expired meanwhile
                        ++s.clients;
                        if (g.auto_allow_clients > 0 && n >= g.auto_allow_clients)
                            s.allowed.emplace_back(identity_of(keys[i], awl_prefix.size()), n);
                    }
                });
    std::sort(s.allowed.begin(), s.allowed.end());

    Output out;
    out.text = "triplets waiting   " + std::to_string(s.pending) + " (" + std::to_string(s.due) +
               " past the delay: their retry passes)\n" + "triplets passed    " +
               std::to_string(s.passed) + "\n" + "clients counted    " + std::to_string(s.clients) +
               "\n" + "clients allowed    " + std::to_string(s.allowed.size()) +
               (g.auto_allow_clients > 0
                    ? " (auto_allow_clients = " + std::to_string(g.auto_allow_clients) + ")\n"
                    : " (auto_allow_clients = 0: off)\n");
    if (s.other > 0) out.text += "unknown values     " + std::to_string(s.other) + "\n";
    std::vector<std::vector<std::string>> rows;
    for (const auto& [identity, n] : s.allowed)
        rows.push_back({"  " + printable(identity), std::to_string(n) + " sender domains"});
    out.text += columns(rows);

    JsonWriter json;
    json.begin_object().key("triplets").begin_object();
    json.field("pending", s.pending).field("pending_past_delay", s.due).field("passed", s.passed);
    json.field("unknown", s.other).end_object();
    json.key("clients").begin_object().field("counted", s.clients);
    json.field("auto_allow_clients", g.auto_allow_clients).key("auto_allowed").begin_array();
    for (const auto& [identity, n] : s.allowed)
        json.begin_object().field("identity", identity).field("domains", n).end_object();
    json.end_array().end_object().end_object();
    out.json = json.str();
    return out;
}

}  // namespace postwarden::admin
