// quota.cpp — quota keys, script arguments, reply parsing and replies; see quota.hpp and the
// header of common/redis/lua/quota.lua.
#include "policyd/quota.hpp"

#include <algorithm>
#include <charconv>

namespace postwarden::policy {

namespace {

// A number as text, without the heap: for Batch::add's string_views.
class Digits {
  public:
    explicit Digits(long long n)
        : size_(std::to_chars(text_, text_ + sizeof text_, n).ptr - text_) {}
    operator std::string_view() const { return {text_, static_cast<std::size_t>(size_)}; }

  private:
    char text_[24];
    std::ptrdiff_t size_;
};

// The member's first space ends the instance, so the instance must not contain one.
std::string instance_of(const Facts& facts) {
    std::string out = facts.instance;
    std::replace(out.begin(), out.end(), ' ', '_');
    return out;
}

// n, then n × (count, window ms, bucket ms): the windows as the scripts read them.
void add_windows(std::vector<std::string>& args, const std::vector<QuotaWindow>& windows) {
    args.push_back(std::to_string(windows.size()));
    for (const auto& w : windows) {
        args.push_back(std::to_string(w.count));
        args.push_back(std::to_string(w.seconds * 1000));
        args.push_back(std::to_string(bucket_ms(w)));
    }
}

// KEYS and ARGV[1..4], the part common to both operations of quota.lua.
ScriptCall script_call(std::string_view op, const Facts& facts,
                       const std::vector<QuotaWindow>& limits,
                       const std::vector<QuotaWindow>& blocks, long long now_ms,
                       const Config& config) {
    ScriptCall call;
    call.keys = quota_script_keys(facts.login, limits, blocks, config);
    call.args = {std::string(op), std::to_string(now_ms), instance_of(facts),
                 std::to_string(config.quota.reserve_ttl)};
    return call;
}

std::optional<long long> integer_at(const redis::Value& v, std::size_t i) {
    if (i >= v.elements.size() || v.elements[i].type != redis::Value::Type::integer)
        return std::nullopt;
    return v.elements[i].integer;
}

// What window w counts at now_ms, from HGETALL's bucket → count pairs (quota.lua's usage());
// nullopt when malformed. stale: a bucket has left the window, and only the script deletes it.
std::optional<long long> live_total(const redis::Value& flat, const QuotaWindow& w,
                                    long long now_ms, bool& stale) {
    if (flat.type != redis::Value::Type::array || flat.elements.size() % 2 != 0)
        return std::nullopt;
    const long long bucket = bucket_ms(w), span = w.seconds * 1000LL;
    long long total = 0;
    for (std::size_t i = 0; i < flat.elements.size(); i += 2) {
        auto b = whole_number(flat.elements[i].str), n = whole_number(flat.elements[i + 1].str);
        if (!b || !n) return std::nullopt;
        if ((*b + 1) * bucket + span <= now_ms)
            stale = true;
        else
            total += *n;
    }
    return total;
}

std::string usage_detail(const QuotaOutcome& o, const std::vector<QuotaWindow>& windows,
                         std::string_view figure_name, std::string_view window_name) {
    if (o.window == 0 || o.window > windows.size()) return "window=none";
    return std::string(window_name) + "=" + window_text(windows[o.window - 1]) + " " +
           std::string(figure_name) + "=" + std::to_string(o.figure);
}

}  // namespace

bool quota_applies(const Facts& facts, const Config& config) {
    return !facts.login.empty() &&
           (!config.quota.limits.empty() || !config.quota.auto_block.empty());
}

ScriptCall reserve_call(const Facts& facts, const std::vector<QuotaWindow>& limits,
                        long long now_ms, const Config& config, Undo undo) {
    auto blocks = block_windows(config);
    auto call = script_call("reserve", facts, limits, blocks, now_ms, config);
    call.args[2] += " " + facts.recipient;
    call.args.push_back(std::to_string(config.quota.penalty_max));
    add_windows(call.args, limits);
    add_windows(call.args, blocks);
    if (undo != Undo::nothing) call.args.push_back(undo == Undo::counted ? "1" : "2");
    return call;
}

bool QuotaMemo::fresh(const std::string& key, long long period) const {
    auto it = periods_.find(key);
    return it != periods_.end() && it->second == period;
}

void QuotaMemo::set(const std::string& key, long long period) {
    if (periods_.size() >= max_entries_ && !periods_.count(key)) periods_.clear();
    periods_[key] = period;
}

// Replies, in order: ZADD; per window HINCRBY, and PEXPIRE when sets_ttl; PEXPIRE held; HGETALL
// per window; HGET; ZCOUNT when asks_due (the cheapest of the ways to ask for reservations due for
// release: 6.7k instructions in Redis, ZRANGEBYSCORE ... LIMIT 0 1 11k). Its range is quota.lua's
// release_expired's, [keep − now, now − reserve_ttl]: the live reservations older than
// reserve_ttl (scores: RCPT times) and the released ones older than keep (scores: −RCPT times),
// to be pruned. Windows are the limits, then the auto_block windows, as KEYS orders them.
ReserveTransaction reserve_transaction(const Facts& facts, const std::vector<QuotaWindow>& limits,
                                       long long now_ms, const Config& config,
                                       const QuotaMemo* memo) {
    auto blocks = block_windows(config);
    const std::size_t n = limits.size() + blocks.size();
    auto base = quota_key_base(facts.login, config);
    std::vector<std::string> keys;  // of the windows, limits first, as the script's KEYS
    keys.reserve(n);
    add_quota_window_keys(keys, base, "used", limits);
    add_quota_window_keys(keys, base, "tried", blocks);
    ReserveTransaction t;
    t.held = base + "held";
    t.second = now_ms / 1000;
    t.asks_due = !memo || !memo->fresh(t.held, t.second);
    const std::string& held = t.held;
    std::string throttle = std::move(base);
    throttle += "throttle";
    t.member = instance_of(facts);
    t.member += ' ';
    t.member += facts.recipient;
    const std::string& member = t.member;
    const long long reserve_ms = config.quota.reserve_ttl * 1000LL;
    long long keep = reserve_ms;
    t.windows.reserve(n);
    auto& out = t.commands;
    out.reserve(512 + member.size() + 3 * n * held.size());
    out.add({"ZADD", held, "NX", Digits(now_ms), member});
    for (std::size_t i = 0; i < n; ++i) {
        const auto& w = i < limits.size() ? limits[i] : blocks[i - limits.size()];
        const long long bucket = bucket_ms(w), lives = w.seconds * 1000LL + bucket;
        auto& tw = t.windows.emplace_back();
        tw.key = std::move(keys[i]);
        tw.ttl_ms = lives;
        tw.bucket = now_ms / bucket;
        tw.sets_ttl = !memo || !memo->fresh(tw.key, tw.bucket);
        out.add({"HINCRBY", tw.key, Digits(tw.bucket), "1"});
        if (tw.sets_ttl) out.add({"PEXPIRE", tw.key, Digits(lives)});
        if (i < limits.size()) keep = std::max(keep, lives);
    }
    out.add({"PEXPIRE", held, Digits(keep)});
    for (const auto& tw : t.windows)
        out.add({"HGETALL", tw.key});
    out.add({"HGET", throttle, "until"});
    if (t.asks_due) out.add({"ZCOUNT", held, Digits(keep - now_ms), Digits(now_ms - reserve_ms)});
    return t;
}

std::optional<TransactionResult> read_reserve_transaction(const redis::Value& v,
                                                          const ReserveTransaction& t,
                                                          const std::vector<QuotaWindow>& limits,
                                                          long long now_ms, const Config& config) {
    using Type = redis::Value::Type;
    auto blocks = block_windows(config);
    const std::size_t n = limits.size() + blocks.size();
    if (t.windows.size() != n) return std::nullopt;
    std::size_t reads = 2 + n;  // where the first HGETALL's reply is: after every PEXPIRE
    for (const auto& tw : t.windows)
        reads += tw.sets_ttl;
    if (v.type != Type::array || v.elements.size() != reads + n + 1 + t.asks_due)
        return std::nullopt;
    const auto& added = v.elements[0];
    const auto& until = v.elements[reads + n];
    if (added.type != Type::integer || (until.type != Type::nil && until.type != Type::string))
        return std::nullopt;
    long long due = 0;  // reservations due for release; not asked: none looked for
    if (t.asks_due) {
        const auto& old = v.elements[reads + n + 1];
        if (old.type != Type::integer) return std::nullopt;
        due = old.integer;
    }
    TransactionResult result;
    result.undo = added.integer == 1 ? Undo::counted_and_held : Undo::counted;
    bool usual = added.integer == 1 && due == 0;
    if (until.type == Type::string) {
        auto t = whole_number(until.str);
        if (!t) return std::nullopt;
        usual = usual && *t <= now_ms;
    }
    QuotaOutcome outcome;
    double fullest = -1;
    for (std::size_t i = 0, at = 1; i < n; ++i) {
        const auto& counted = v.elements[at];
        if (counted.type != Type::integer) return std::nullopt;
        if (!t.windows[i].sets_ttl && counted.integer == 1) result.untimed.push_back(i);
        at += t.windows[i].sets_ttl ? 2 : 1;
        const auto& w = i < limits.size() ? limits[i] : blocks[i - limits.size()];
        bool stale = false;
        auto total = live_total(v.elements[reads + i], w, now_ms, stale);
        if (!total) return std::nullopt;
        usual = usual && !stale && *total <= w.count;
        double ratio = static_cast<double>(*total) / static_cast<double>(w.count);
        if (i < limits.size() && ratio > fullest) {
            fullest = ratio;
            outcome.window = i + 1;
            outcome.figure = *total;
        }
    }
    if (usual && !limits.empty()) result.reserved = outcome;
    return result;
}

std::vector<std::vector<std::string>> note_transaction(QuotaMemo& memo, const ReserveTransaction& t,
                                                       const TransactionResult& result) {
    for (const auto& tw : t.windows)
        if (tw.sets_ttl) memo.set(tw.key, tw.bucket);
    if (t.asks_due) memo.set(t.held, t.second);
    std::vector<std::vector<std::string>> pexpire;
    for (auto i : result.untimed) {
        const auto& tw = t.windows.at(i);
        memo.forget(tw.key);
        pexpire.push_back({"PEXPIRE", tw.key, std::to_string(tw.ttl_ms)});
    }
    return pexpire;
}

// A message's entry: held's key, then the instance (held's key ends in "}:held", and a login's
// braces are percent-encoded, so two users' messages never share one).
void Reservations::add(const std::string& held, const std::string& member, long long ms) {
    std::string message = held;
    message.append(member, 0, member.find(' '));
    if (messages_.size() >= max_messages_) messages_.clear();
    auto& known = messages_.try_emplace(std::move(message)).first->second;
    for (const auto& r : known)
        if (r.member == member) return;
    known.push_back({member, ms});
}

std::vector<Reservations::Reserved> Reservations::take(const Facts& facts, const Config& config) {
    auto it = messages_.find(quota_key_base(facts.login, config) + "held" + instance_of(facts));
    if (it == messages_.end()) return {};
    auto known = std::move(it->second);
    messages_.erase(it);
    return known;
}

std::optional<redis::Batch> commit_transaction(const Facts& facts, long recipient_count,
                                               const std::vector<Reservations::Reserved>& known,
                                               long long now_ms, const Config& config) {
    if (known.empty()) return std::nullopt;
    if (recipient_count >= 0 && static_cast<std::size_t>(recipient_count) < known.size())
        return std::nullopt;
    const long long cutoff = now_ms - config.quota.reserve_ttl * 1000LL;  // quota.lua's
    for (const auto& r : known)
        if (r.ms <= cutoff) return std::nullopt;
    const auto held = quota_key_base(facts.login, config) + "held";
    std::vector<std::string> zrem{"ZREM", held};
    zrem.reserve(2 + known.size());
    for (const auto& r : known)
        zrem.push_back(r.member);
    redis::Batch t;
    t.add(zrem);
    // Redis picks the message's members out (one glob, the instance's own * ? [ ] \ escaped)
    std::string match;
    for (char c : instance_of(facts)) {
        if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') match += '\\';
        match += c;
    }
    match += " *";
    t.add({"ZSCAN", held, "0", "MATCH", match, "COUNT", Digits(commit_scan_count)});
    return t;
}

std::optional<CommitRead> read_commit_transaction(const redis::Value& v) {
    using Type = redis::Value::Type;
    if (v.type != Type::array || v.elements.size() != 2) return std::nullopt;
    const auto &removed = v.elements[0], &scan = v.elements[1];
    if (removed.type != Type::integer || scan.type != Type::array || scan.elements.size() != 2)
        return std::nullopt;
    const auto &cursor = scan.elements[0], &found = scan.elements[1];
    if (cursor.type != Type::string || found.type != Type::array) return std::nullopt;
    CommitRead read;
    read.committed = removed.integer;
    // A cursor other than 0: held is too large to have been scanned whole (past
    // commit_scan_count): the script looks.
    read.others = cursor.str != "0" || !found.elements.empty();
    return read;
}

ScriptCall commit_call(const Facts& facts, long recipient_count,
                       const std::vector<QuotaWindow>& limits, long long now_ms,
                       const Config& config) {
    auto call = script_call("commit", facts, limits, {}, now_ms, config);
    call.args.push_back(std::to_string(recipient_count < 0 ? -1 : recipient_count));
    add_windows(call.args, limits);
    add_windows(call.args, {});
    return call;
}

std::optional<QuotaOutcome> parse_reserve_reply(const redis::Value& v) {
    if (v.type != redis::Value::Type::array || v.elements.size() != 4 ||
        v.elements[0].type != redis::Value::Type::string)
        return std::nullopt;
    QuotaOutcome o;
    const auto& verdict = v.elements[0].str;
    if (verdict == "reserved")
        o.verdict = QuotaVerdict::reserved;
    else if (verdict == "throttled")
        o.verdict = QuotaVerdict::throttled;
    else if (verdict == "penalty")
        o.verdict = QuotaVerdict::penalty;
    else if (verdict == "blocked")
        o.verdict = QuotaVerdict::blocked;
    else
        return std::nullopt;
    auto until = integer_at(v, 1), window = integer_at(v, 2), figure = integer_at(v, 3);
    if (!until || !window || !figure || *until < 0 || *window < 0 || *figure < 0)
        return std::nullopt;
    bool refused = o.verdict == QuotaVerdict::throttled || o.verdict == QuotaVerdict::penalty;
    if (refused && *until == 0) return std::nullopt;
    o.until_ms = *until;
    o.window = static_cast<std::size_t>(*window);
    o.figure = *figure;
    return o;
}

std::optional<CommitOutcome> parse_commit_reply(const redis::Value& v) {
    if (v.type != redis::Value::Type::array || v.elements.size() != 3) return std::nullopt;
    auto committed = integer_at(v, 0), released = integer_at(v, 1), late = integer_at(v, 2);
    if (!committed || !released || !late) return std::nullopt;
    return CommitOutcome{*committed, *released, *late};
}

std::string commit_detail(const CommitOutcome& o) {
    auto out =
        "committed=" + std::to_string(o.committed) + " released=" + std::to_string(o.released);
    if (o.late > 0) out += " late=" + std::to_string(o.late);
    return out;
}

Decision quota_decision(const QuotaOutcome& o, const std::vector<QuotaWindow>& limits,
                        const Config& config) {
    switch (o.verdict) {
        case QuotaVerdict::reserved:
            return dunno("quota-ok", usage_detail(o, limits, "used", "window"));
        case QuotaVerdict::throttled:
        case QuotaVerdict::penalty: {
            auto when = rfc3339(o.until_ms);
            auto detail = usage_detail(o, limits, "used", "window") + " until=" + when;
            if (o.verdict == QuotaVerdict::penalty) detail += " penalty=yes";
            return {"DEFER " + expand(config.replies.throttled, "time", when), "quota-throttled",
                    detail};
        }
        case QuotaVerdict::blocked:
            return {"REJECT " + config.replies.blocked_login, "quota-blocked",
                    usage_detail(o, block_windows(config), "attempted", "auto_block")};
    }
    return dunno("quota-ok");
}

std::string block_reason(const QuotaOutcome& o, const Config& config, long long now_ms) {
    auto windows = block_windows(config);
    std::string window = o.window >= 1 && o.window <= windows.size()
                             ? window_text(windows[o.window - 1])
                             : std::string("?");
    return "auto_block " + window + ": " + std::to_string(o.figure) + " recipients attempted at " +
           rfc3339(now_ms / 1000 * 1000);
}

}  // namespace postwarden::policy
