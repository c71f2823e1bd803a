// quota_keys.cpp — quota key names, limits and window arithmetic; see quota_keys.hpp and the
// header of common/redis/lua/quota.lua.
#include "common/quota_keys.hpp"

#include <algorithm>
#include <charconv>
#include <ctime>

#include "common/hash_tag.hpp"

namespace postwarden {

namespace {

constexpr long long buckets_per_window = 60;

}  // namespace

std::string quota_key_base(std::string_view login, const Config& config) {
    std::string out;
    out.reserve(config.redis.prefix.size() + login.size() + 40);  // room for a key's tail
    out += config.redis.prefix;
    out += "quota:{";
    append_hash_tag_text(out, login);
    out += "}:";
    return out;
}

void add_quota_window_keys(std::vector<std::string>& keys, const std::string& base,
                           std::string_view kind, const std::vector<QuotaWindow>& windows) {
    for (const auto& w : windows) {
        auto& key = keys.emplace_back(base);
        key += kind;
        key += ':';
        char digits[24];
        key.append(digits, std::to_chars(digits, digits + sizeof digits, w.seconds).ptr);
    }
}

std::vector<std::string> quota_script_keys(std::string_view login,
                                           const std::vector<QuotaWindow>& limits,
                                           const std::vector<QuotaWindow>& blocks,
                                           const Config& config) {
    auto base = quota_key_base(login, config);
    std::vector<std::string> keys = {base + "held", base + "throttle"};
    add_quota_window_keys(keys, base, "used", limits);
    add_quota_window_keys(keys, base, "tried", blocks);
    return keys;
}

std::string quota_override_key(std::string_view login, const Config& config) {
    return config.redis.prefix + "quota:limits:" + std::string(login);
}

std::vector<QuotaWindow> merge_windows(std::vector<QuotaWindow> windows) {
    std::sort(windows.begin(), windows.end(), [](const QuotaWindow& a, const QuotaWindow& b) {
        return a.seconds < b.seconds || (a.seconds == b.seconds && a.count < b.count);
    });
    auto same = [](const QuotaWindow& a, const QuotaWindow& b) { return a.seconds == b.seconds; };
    windows.erase(std::unique(windows.begin(), windows.end(), same), windows.end());
    return windows;
}

QuotaLimits effective_limits(const std::optional<std::string>& override_text,
                             const Config& config) {
    QuotaLimits out;
    if (override_text) {
        std::string error;
        if (auto w = parse_quota_windows(*override_text, &error)) {
            out.windows = merge_windows(*w);
            out.overridden = true;
            return out;
        }
        out.warning = error;
    }
    out.windows = merge_windows(config.quota.limits);
    return out;
}

std::vector<QuotaWindow> block_windows(const Config& config) {
    return merge_windows(config.quota.auto_block);
}

long long bucket_ms(const QuotaWindow& window) {
    return (window.seconds * 1000 + buckets_per_window - 1) / buckets_per_window;
}

std::string rfc3339(long long unix_ms) {
    std::time_t seconds = static_cast<std::time_t>((unix_ms + 999) / 1000);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
    return text;
}

std::string window_text(const QuotaWindow& window) {
    return std::to_string(window.count) + "/" + std::to_string(window.seconds);
}

}  // namespace postwarden
