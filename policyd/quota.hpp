// quota.hpp — sending quotas of authenticated users (SPEC §3, §4 Quotas; S3, S4), the pure part:
// which windows apply to a user, the keys and arguments of common/lua/quota.lua ("reserve" at RCPT,
// "commit" at END-OF-MESSAGE), what its replies mean, and the reply and log detail policyd gives.
// The semantics themselves (windows, reservations, penalty, auto_block) live in the script; see
// its header. No Redis I/O, no clock: time is an argument.
//
// Entry points: quota_applies, quota_override_key, effective_limits, reserve_call, commit_call,
// parse_reserve_reply, parse_commit_reply, quota_decision, block_reason, rfc3339.
// Threading: pure functions, callable from any thread.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.hpp"
#include "common/redis.hpp"
#include "policyd/decision.hpp"

namespace postwarden::policy {

// Quotas count the recipients of SASL users only, and only while [quota] limits or auto_block is
// set; with both off no quota lookup is made (per-user overrides included).
bool quota_applies(const Facts& facts, const Config& config);

// <prefix>quota:limits:<login>: the operator's per-user override of [quota] limits.
std::string quota_override_key(std::string_view login, const Config& config);

// Windows of the same length would share one Redis key: they are merged, the smaller count wins.
std::vector<QuotaWindow> merge_windows(std::vector<QuotaWindow> windows);

struct QuotaLimits {
    std::vector<QuotaWindow> windows;
    bool overridden = false;
    std::string warning;  // set when the override text is invalid (the default applies)
};

// The limits for a user: the override text (GET's answer; nullopt when the key is absent) when
// it parses, else [quota] limits. "0" in the override means no limit for that user.
QuotaLimits effective_limits(const std::optional<std::string>& override_text, const Config& config);

// The auto_block windows, merged like the limits.
std::vector<QuotaWindow> block_windows(const Config& config);

// The time unit of a window's counters: 1/60 of its length, in milliseconds, rounded up.
long long bucket_ms(const QuotaWindow& window);

struct ScriptCall {
    std::vector<std::string> keys, args;
};

// KEYS and ARGV of quota.lua "reserve" for this RCPT of facts.login at now_ms.
ScriptCall reserve_call(const Facts& facts, const std::vector<QuotaWindow>& limits,
                        long long now_ms, const Config& config);
// KEYS and ARGV of quota.lua "commit" at END-OF-MESSAGE; recipient_count -1 when unknown.
ScriptCall commit_call(const Facts& facts, long recipient_count,
                       const std::vector<QuotaWindow>& limits, long long now_ms,
                       const Config& config);

enum class QuotaVerdict { reserved, throttled, penalty, blocked };

struct QuotaOutcome {
    QuotaVerdict verdict = QuotaVerdict::reserved;
    long long until_ms = 0;  // throttled, penalty: when to try again
    std::size_t window = 0;  // 1-based: limits (blocked: auto_block windows); 0: none
    long long figure = 0;    // that window's recipients (blocked: attempts)
};

// The reply of "reserve": {verdict, until_ms, window, figure}; nullopt when malformed.
std::optional<QuotaOutcome> parse_reserve_reply(const redis::Value& reply);

// The reply of "commit": {committed, released}.
struct CommitOutcome {
    long long committed = 0, released = 0;
};
std::optional<CommitOutcome> parse_commit_reply(const redis::Value& reply);

// The reply and log detail of a reserve outcome (reason quota-ok, quota-throttled or
// quota-blocked, with "window=100/3600 used=100").
Decision quota_decision(const QuotaOutcome& outcome, const std::vector<QuotaWindow>& limits,
                        const Config& config);

// The block:why value written when auto_block blocks a login: the reason, the figure, the time.
std::string block_reason(const QuotaOutcome& outcome, const Config& config, long long now_ms);

// "2024-05-01T12:00:01Z": UTC, rounded up to the whole second, so that a client retrying at the
// announced time is never early.
std::string rfc3339(long long unix_ms);

// "100/3600".
std::string window_text(const QuotaWindow& window);

}  // namespace postwarden::policy
