// quota_keys.hpp — the sending-quota key scheme and window arithmetic shared by policyd, which
// writes the keys through common/redis/lua/quota.lua, and the admin CLI, which reads them: the
// names of a user's keys, the limits in force for a user, a window's bucket length, and how windows
// and times are spelled in replies and logs. No Redis I/O, no clock: time is an argument.
//
// Entry points: quota_key_base, add_quota_window_keys, quota_script_keys, quota_override_key,
// merge_windows, effective_limits, block_windows, bucket_ms, rfc3339, window_text.
// Threading: pure functions, callable from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.hpp"

namespace postwarden {

// "<prefix>quota:{<login>}:", the start of every quota key of a user. The login is the keys'
// hash tag: braces would move the tag, so they (and '%', to keep the encoding unambiguous) are
// percent-encoded; two logins never share keys.
std::string quota_key_base(std::string_view login, const Config& config);

// Appends base + kind + ":<seconds>" for each window ("used:3600", "tried:60").
void add_quota_window_keys(std::vector<std::string>& keys, const std::string& base,
                           std::string_view kind, const std::vector<QuotaWindow>& windows);

// quota.lua's KEYS for a user, in the script's order: held, throttle, used:<s> per limit window,
// tried:<s> per auto_block window.
std::vector<std::string> quota_script_keys(std::string_view login,
                                           const std::vector<QuotaWindow>& limits,
                                           const std::vector<QuotaWindow>& blocks,
                                           const Config& config);

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

// "2024-05-01T12:00:01Z": UTC, rounded up to the whole second, so that a client retrying at the
// announced time is never early.
std::string rfc3339(long long unix_ms);

// "100/3600".
std::string window_text(const QuotaWindow& window);

}  // namespace postwarden
