// auth_store.cpp — login-protection state in Redis; see auth_store.hpp.
#include "policyd/auth_store.hpp"

#include <charconv>
#include <memory>

#include "common/auth_keys.hpp"
#include "common/log.hpp"
#include "common/redis/scripts.hpp"

namespace postwarden::policy {

namespace {

using Type = redis::Value::Type;

// Waits for `pending` replies, then calls finish once with whether all of them were usable.
template <typename Result>
struct Join {
    int pending = 0;
    bool failed = false;
    Result result{};
    std::function<void(std::optional<Result>)> done;

    void settle(bool usable) {
        failed = failed || !usable;
        if (--pending > 0) return;
        if (failed) return done(std::nullopt);
        done(std::move(result));
    }
};

std::optional<long long> integer_of(const redis::Value& v) {
    if (v.type == Type::integer) return v.integer;
    if (v.type != Type::string) return std::nullopt;
    long long n = 0;
    auto [end, ec] = std::from_chars(v.str.data(), v.str.data() + v.str.size(), n);
    if (ec != std::errc() || end != v.str.data() + v.str.size()) return std::nullopt;
    return n;
}

bool usable(const redis::Reply& r) {
    if (!r.ok) return false;
    if (r.value.is_error()) log::warning("auth: Redis answered " + r.value.str);
    return !r.value.is_error();
}

// auth_fail.lua's {verdict, until_ms, count}.
struct ScriptReply {
    std::string verdict;
    long long until_ms = 0, count = 0;
};
std::optional<ScriptReply> read_script_reply(const redis::Value& v) {
    if (v.type != Type::array || v.elements.size() != 3 || v.elements[0].type != Type::string)
        return std::nullopt;
    auto until_ms = integer_of(v.elements[1]);
    auto count = integer_of(v.elements[2]);
    if (!until_ms || !count) return std::nullopt;
    return ScriptReply{v.elements[0].str, *until_ms, *count};
}

std::string number(long long n) {
    return std::to_string(n);
}

}  // namespace

AuthStore::AuthStore(redis::Client& redis)
    : redis_(redis),
      script_(std::string(script_text("auth_fail"))),
      random_(std::random_device{}()) {}

std::string AuthStore::failure_id(long long now_ms) {
    char hex[17];
    auto end = std::to_chars(hex, hex + 16, random_(), 16).ptr;
    return number(now_ms) + "-" + std::string(hex, end);
}

void AuthStore::lookup(const std::string& login, const std::string& client, long long now_ms,
                       const Config& config, Looked done) {
    auto join = std::make_shared<Join<AuthState>>();
    join->done = std::move(done);
    const bool tarpit = config.auth.tarpit_after > 0;
    join->pending = 1 + (login.empty() ? 0 : 1 + tarpit) + (client.empty() ? 0 : 1);
    if (!login.empty()) {
        redis_.command({"SISMEMBER", auth_block_key(config), login}, [join](redis::Reply r) {
            bool ok = usable(r) && r.value.type == Type::integer;
            if (ok) join->result.account_locked = r.value.integer == 1;
            join->settle(ok);
        });
        if (tarpit) {
            auto since = "(" + number(now_ms - config.auth.ip_lockout.seconds * 1000);
            redis_.command({"ZCOUNT", auth_login_key(login, config), since, "+inf"},
                           [join](redis::Reply r) {
                               bool ok = usable(r) && r.value.type == Type::integer;
                               if (ok)
                                   join->result.login_failures = static_cast<long>(r.value.integer);
                               join->settle(ok);
                           });
        }
    }
    if (!client.empty())
        redis_.command({"GET", auth_address_keys(client, config).lock}, [join](redis::Reply r) {
            bool ok = usable(r);
            if (ok && r.value.type != Type::nil) {
                join->result.locked_until = integer_of(r.value);
                ok = join->result.locked_until.has_value();
            }
            join->settle(ok);
        });
    join->settle(true);  // the one counted for this call itself: done even with nothing to ask
}

// The index of locked clients (auth_keys.hpp) for `postwarden blocked`: idempotent single-key
// commands, sent without waiting; if they fail, the lock itself still holds.
void AuthStore::index_lockout(const std::string& index, const std::string& client,
                              long long until_ms, long long lockout_ms) {
    auto ignore = [](redis::Reply) {};
    redis_.command({"ZADD", index, number(until_ms), client}, ignore);
    redis_.command({"ZREMRANGEBYSCORE", index, "-inf", number(until_ms - lockout_ms)}, ignore);
    redis_.command({"PEXPIRE", index, number(lockout_ms)}, ignore);
}

void AuthStore::record_failure(const std::string& login, const std::string& client,
                               long long now_ms, const Config& config, Recorded done) {
    auto join = std::make_shared<Join<FailureOutcome>>();
    join->done = std::move(done);
    const auto& a = config.auth;
    const bool tarpit = a.tarpit_after > 0 && !login.empty();
    join->pending = 1 + tarpit + (client.empty() ? 0 : 1);
    const auto window_ms = number(a.ip_lockout.seconds * 1000);
    const auto now = number(now_ms);
    if (!client.empty()) {
        auto keys = auth_address_keys(client, config);
        redis_.eval(script_, {keys.fails, keys.lock},
                    {now, window_ms, number(a.ip_lockout.count), number(a.lockout_time * 1000),
                     failure_id(now_ms)},
                    [this, join, client, config_ms = a.lockout_time * 1000,
                     index = auth_locked_index_key(config)](redis::Reply r) {
                        auto s = usable(r) ? read_script_reply(r.value) : std::nullopt;
                        if (s && s->verdict == "locked")
                            index_lockout(index, client, s->until_ms, config_ms);
                        if (s && s->verdict != "counted") join->result.locked_until = s->until_ms;
                        if (s) join->result.locked_now = s->verdict == "locked";
                        if (s) join->result.client_failures = static_cast<long>(s->count);
                        join->settle(s.has_value());
                    });
    }
    if (tarpit)
        redis_.eval(script_, {auth_login_key(login, config)},
                    {now, window_ms, number(a.tarpit_after + 4), "0", failure_id(now_ms)},
                    [join](redis::Reply r) {
                        auto s = usable(r) ? read_script_reply(r.value) : std::nullopt;
                        if (s) join->result.login_failures = static_cast<long>(s->count);
                        join->settle(s.has_value());
                    });
    join->settle(true);
}

}  // namespace postwarden::policy
