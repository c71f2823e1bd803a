// quota.cpp — `postwarden quota LOGIN`: what common/redis/lua/quota.lua holds for one user, read
// the way the script reads it (see its header): a window's usage is the sum of its buckets that
// have not left the window, less the reservations older than reserve_ttl that the script gives back
// at the user's next request; the throttle is the announced time T in quota:{login}:throttle.
// Key names and the limits in force come from common/quota_keys.hpp, as policyd's do, so they
// cannot drift from the daemon's. Read-only: nothing is pruned or released here.
#include <map>

#include "admin/commands.hpp"
#include "admin/json.hpp"
#include "common/address.hpp"
#include "common/quota_keys.hpp"
#include "common/redis/redis.hpp"

namespace postwarden::admin {

namespace {

struct WindowUsage {
    QuotaWindow window;
    long long figure = 0;  // limits: recipients used (reservations included); auto_block: attempts
};

// The count window w holds at now_ms: HGETALL's buckets less the expired reservations (their
// RCPT times) that the script would release first.
long long window_usage(const QuotaWindow& w, const redis::Value& buckets,
                       const std::vector<long long>& expired, long long now_ms) {
    long long bucket = bucket_ms(w), span = w.seconds * 1000;
    std::map<long long, long long> live;
    for (const auto& [field, count] : hash_of(buckets))
        live[std::stoll(field)] += std::stoll(count);
    for (long long ms : expired)
        if (auto it = live.find(ms / bucket); it != live.end() && it->second > 0) --it->second;
    long long total = 0;
    for (const auto& [b, n] : live)
        if ((b + 1) * bucket + span > now_ms) total += n;  // the bucket has not left the window
    return total;
}

std::string limits_text(const std::vector<QuotaWindow>& windows) {
    if (windows.empty()) return "none";
    std::string out;
    for (const auto& w : windows)
        out += (out.empty() ? "" : ", ") + window_text(w);
    return out;
}

struct QuotaState {
    std::string login;
    std::optional<std::string> override_text;
    QuotaLimits limits;
    std::vector<WindowUsage> used, tried;
    long long reserved = 0, expired = 0, throttled_until = 0;
    bool blocked = false;
    std::optional<std::string> block_why;
};

void read_usage(Context& ctx, QuotaState& s) {
    auto blocks = block_windows(ctx.config);
    if (s.limits.windows.empty() && blocks.empty()) return;
    // The user's keys in the script's order: held, throttle, used:<s> per limit window, tried:<s>
    // per auto_block window.
    auto keys = quota_script_keys(s.login, s.limits.windows, blocks, ctx.config);
    std::vector<std::vector<std::string>> commands = {{"ZRANGE", keys[0], "0", "-1", "WITHSCORES"},
                                                      {"HGET", keys[1], "until"}};
    for (std::size_t i = 2; i < keys.size(); ++i)
        commands.push_back({"HGETALL", keys[i]});
    auto replies = ctx.store.batch(std::move(commands));

    auto held = strings_of(replies[0]);
    std::vector<long long> expired;
    for (std::size_t i = 1; i < held.size(); i += 2) {
        long long ms = std::stoll(held[i]);
        if (ms < 0) continue;  // given back already, kept for a late END-OF-MESSAGE (quota.lua)
        if (ms <= ctx.now_ms - ctx.config.quota.reserve_ttl * 1000)
            expired.push_back(ms);
        else
            ++s.reserved;
    }
    s.expired = static_cast<long long>(expired.size());
    if (replies[1].type == redis::Value::Type::string) {
        long long until = std::stoll(replies[1].str);
        if (until > ctx.now_ms) s.throttled_until = until;
    }
    std::size_t r = 2;
    for (const auto& w : s.limits.windows)
        s.used.push_back({w, window_usage(w, replies[r++], expired, ctx.now_ms)});
    for (const auto& w : blocks)
        s.tried.push_back({w, window_usage(w, replies[r++], {}, ctx.now_ms)});
}

std::string quota_text(const Context& ctx, const QuotaState& s) {
    std::string out = "login       " + printable(s.login) + "\n";
    if (ctx.config.quota.limits.empty() && ctx.config.quota.auto_block.empty()) {
        out += "quotas are off ([quota] limits = 0 and auto_block = 0)\n";
    } else {
        out += "limits      " + limits_text(s.limits.windows) +
               (s.limits.overridden ? " (quota:limits:" + printable(s.login) + ")\n"
                                    : " ([quota] limits)\n");
        if (!s.limits.warning.empty())
            out += "warning     quota:limits:" + printable(s.login) + " is invalid (" +
                   printable(s.limits.warning) + "); [quota] limits apply\n";
        std::vector<std::vector<std::string>> rows = {{"WINDOW", "USED", "LEFT"}};
        for (const auto& u : s.used)
            rows.push_back({window_text(u.window), std::to_string(u.figure),
                            std::to_string(std::max(0L, u.window.count - (long)u.figure))});
        if (!s.used.empty()) out += columns(rows);
        out += "reserved    " + std::to_string(s.reserved) +
               " recipients waiting for END-OF-MESSAGE (counted in USED)\n";
        if (s.expired > 0)
            out += "expired     " + std::to_string(s.expired) +
                   " reservations, given back at the user's next request (not counted)\n";
        for (const auto& t : s.tried)
            out += "auto_block  " + window_text(t.window) + ": " + std::to_string(t.figure) +
                   " recipients attempted\n";
        out += s.throttled_until ? "throttled   until " + rfc3339(s.throttled_until) + "\n"
                                 : "throttled   no\n";
    }
    out += "blocked     " +
           (s.blocked ? "yes" + (s.block_why ? " (" + printable(*s.block_why) + ")" : "")
                      : std::string("no")) +
           "\n";
    return out;
}

std::string quota_json(const Context& ctx, const QuotaState& s) {
    JsonWriter json;
    json.begin_object().field("login", s.login);
    json.field("enabled",
               !(ctx.config.quota.limits.empty() && ctx.config.quota.auto_block.empty()));
    json.key("override");
    s.override_text ? json.value(*s.override_text) : json.null();
    json.key("override_error");
    s.limits.warning.empty() ? json.null() : json.value(s.limits.warning);
    json.key("windows").begin_array();
    for (const auto& u : s.used)
        json.begin_object()
            .field("limit", u.window.count)
            .field("seconds", u.window.seconds)
            .field("used", u.figure)
            .field("left", std::max(0LL, u.window.count - u.figure))
            .end_object();
    json.end_array().field("reserved", s.reserved).field("expired_reservations", s.expired);
    json.key("auto_block").begin_array();
    for (const auto& t : s.tried)
        json.begin_object()
            .field("limit", t.window.count)
            .field("seconds", t.window.seconds)
            .field("attempted", t.figure)
            .end_object();
    json.end_array().key("throttled_until");
    s.throttled_until ? json.value(rfc3339(s.throttled_until)) : json.null();
    json.key("throttled_until_ms");
    s.throttled_until ? json.value(s.throttled_until) : json.null();
    json.field("blocked", s.blocked).key("block_reason");
    s.block_why ? json.value(*s.block_why) : json.null();
    return json.end_object().str();
}

}  // namespace

Output quota(Context& ctx, std::string_view login) {
    QuotaState s;
    s.login = to_lower(login);  // as policyd's sasl_username
    if (s.login.empty()) throw Failure(exit_usage, "quota: empty login");
    auto replies = ctx.store.batch({{"GET", quota_override_key(s.login, ctx.config)},
                                    {"SISMEMBER", ctx.store.key("block:login"), s.login},
                                    {"HGET", ctx.store.key("block:why"), s.login}});
    if (replies[0].type == redis::Value::Type::string) s.override_text = replies[0].str;
    s.blocked = replies[1].integer != 0;
    if (replies[2].type == redis::Value::Type::string) s.block_why = replies[2].str;
    s.limits = effective_limits(s.override_text, ctx.config);
    // With both off policyd makes no quota lookups at all, overrides included (quota_applies).
    if (ctx.config.quota.limits.empty() && ctx.config.quota.auto_block.empty())
        s.limits.windows.clear();
    else
        read_usage(ctx, s);
    return {exit_ok, quota_text(ctx, s), quota_json(ctx, s), ""};
}

}  // namespace postwarden::admin
