// auth.cpp — `postwarden auth status|unlock ADDRESS|LOGIN` (SPEC §8): what the login protection
// holds in Redis for a client address (its lockout, its recent failures) or for a login (its
// recent failures, the delay they earn, block:auth), read and deleted by the key names of
// common/auth_keys.hpp, as policyd writes them (common/redis/lua/auth_fail.lua). ADDRESS is an
// IP address or, for IPv6, the /64 it is counted under; anything else is a login.
#include <algorithm>

#include "admin/commands.hpp"
#include "admin/json.hpp"
#include "common/address.hpp"
#include "common/auth_keys.hpp"
#include "common/quota_keys.hpp"

namespace postwarden::admin {

namespace {

std::string since(Context& ctx) {
    return "(" + std::to_string(ctx.now_ms - ctx.config.auth.ip_lockout.seconds * 1000);
}

long long integer_of(const redis::Value& v) {
    if (v.type == redis::Value::Type::integer) return v.integer;
    if (v.type == redis::Value::Type::string) return std::atoll(v.str.c_str());
    return 0;
}

Output client_status(Context& ctx, const std::string& client) {
    auto keys = auth_address_keys(client, ctx.config);
    auto replies =
        ctx.store.batch({{"GET", keys.lock}, {"ZCOUNT", keys.fails, since(ctx), "+inf"}});
    const long long until = integer_of(replies[0]);
    const bool locked = until > ctx.now_ms;
    const long long failures = integer_of(replies[1]);
    Output out;
    JsonWriter json;
    json.begin_object().field("address", client).field("locked", locked).key("until");
    locked ? json.value(rfc3339(until)) : json.null();
    out.json = json.field("failures", failures)
                   .field("limit", window_text(ctx.config.auth.ip_lockout))
                   .end_object()
                   .str();
    out.text = client + ": " +
               (locked ? "locked until " + rfc3339(until) : std::string("not locked")) + ", " +
               std::to_string(failures) + " failed login(s) counted against " +
               window_text(ctx.config.auth.ip_lockout) + "\n";
    return out;
}

Output login_status(Context& ctx, const std::string& login) {
    auto replies =
        ctx.store.batch({{"SISMEMBER", auth_block_key(ctx.config), login},
                         {"ZCOUNT", auth_login_key(login, ctx.config), since(ctx), "+inf"}});
    const bool blocked = integer_of(replies[0]) == 1;
    const long long failures = integer_of(replies[1]);
    const int delay = tarpit_seconds(static_cast<long>(failures), ctx.config.auth.tarpit_after);
    Output out;
    JsonWriter json;
    out.json = json.begin_object()
                   .field("login", login)
                   .field("locked", blocked)
                   .field("failures", failures)
                   .field("delay", delay)
                   .end_object()
                   .str();
    out.text = printable(login) + ": " +
               (blocked ? "locked (block:auth)" : std::string("not locked")) + ", " +
               std::to_string(failures) + " failed login(s) in the last " +
               std::to_string(ctx.config.auth.ip_lockout.seconds) + " s, delayed " +
               std::to_string(delay) + " s\n";
    return out;
}

Output unlocked(const std::string& who, const std::vector<std::string>& what) {
    Output out;
    JsonWriter json;
    json.begin_object().field("unlocked", who).key("removed").begin_array();
    for (const auto& w : what)
        json.value(w);
    out.json = json.end_array().end_object().str();
    for (const auto& w : what)
        out.text += "removed " + w + " of " + printable(who) + "\n";
    if (what.empty()) {
        out.exit_code = exit_not_found;
        out.message = printable(who) + " is neither locked nor has failed logins counted";
    }
    return out;
}

}  // namespace

Output auth_status(Context& ctx, std::string_view who) {
    if (auto client = parse_auth_client(who)) return client_status(ctx, *client);
    auto login = to_lower(who);
    if (login.empty()) throw Failure(exit_usage, "auth status: empty name");
    return login_status(ctx, login);
}

Output auth_unlock(Context& ctx, std::string_view who) {
    std::vector<std::string> removed;
    if (auto client = parse_auth_client(who)) {
        auto keys = auth_address_keys(*client, ctx.config);
        auto r = ctx.store.batch({{"DEL", keys.lock},
                                  {"DEL", keys.fails},
                                  {"ZREM", auth_locked_index_key(ctx.config), *client}});
        if (r[0].integer > 0) removed.push_back("the lockout");
        if (r[1].integer > 0) removed.push_back("the failed logins");
        return unlocked(*client, removed);
    }
    auto login = to_lower(who);
    if (login.empty()) throw Failure(exit_usage, "auth unlock: empty name");
    auto r = ctx.store.batch(
        {{"SREM", auth_block_key(ctx.config), login}, {"DEL", auth_login_key(login, ctx.config)}});
    if (r[0].integer > 0) removed.push_back("block:auth");
    if (r[1].integer > 0) removed.push_back("the failed logins");
    return unlocked(login, removed);
}

// The index policyd keeps, each member checked against its lock key: an index entry whose lock
// was deleted by hand (redis-cli DEL) is not shown.
std::vector<LockedClient> locked_clients(Context& ctx) {
    auto index = ctx.store.run({"ZRANGEBYSCORE", auth_locked_index_key(ctx.config),
                                "(" + std::to_string(ctx.now_ms), "+inf", "WITHSCORES"});
    auto flat = strings_of(index);
    std::vector<LockedClient> out;
    std::vector<std::vector<std::string>> gets;
    for (std::size_t i = 0; i + 1 < flat.size(); i += 2)
        gets.push_back({"GET", auth_address_keys(flat[i], ctx.config).lock});
    if (gets.empty()) return out;
    auto locks = ctx.store.batch(std::move(gets));
    for (std::size_t i = 0; i < locks.size(); ++i) {
        const long long until = integer_of(locks[i]);
        if (until > ctx.now_ms) out.push_back({flat[2 * i], until});
    }
    std::sort(out.begin(), out.end(),
              [](const LockedClient& a, const LockedClient& b) { return a.client < b.client; });
    return out;
}

}  // namespace postwarden::admin
