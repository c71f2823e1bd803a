// config_types.cpp — the parsers of config_types.hpp: fail modes, quota windows, blanks.
#include "common/config_types.hpp"

#include <charconv>

namespace postwarden {

namespace config_detail {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
        s.remove_suffix(1);
    return s;
}

}  // namespace config_detail

using config_detail::trim;

std::string_view to_string(FailMode mode) {
    return mode == FailMode::open ? "open" : "closed";
}

std::optional<std::vector<QuotaWindow>> parse_quota_windows(std::string_view text,
                                                            std::string* error) {
    std::vector<QuotaWindow> out;
    text = trim(text);
    if (text.empty() || text == "0") return out;
    std::size_t pos = 0;
    while (pos <= text.size()) {
        auto end = text.find(',', pos);
        if (end == std::string_view::npos) end = text.size();
        auto item = trim(text.substr(pos, end - pos));
        auto slash = item.find('/');
        QuotaWindow w;
        auto count = item.substr(0, slash == std::string_view::npos ? 0 : slash);
        auto secs = slash == std::string_view::npos ? std::string_view() : item.substr(slash + 1);
        auto r1 = std::from_chars(count.data(), count.data() + count.size(), w.count);
        auto r2 = std::from_chars(secs.data(), secs.data() + secs.size(), w.seconds);
        if (count.empty() || secs.empty() || r1.ec != std::errc() || r2.ec != std::errc() ||
            r1.ptr != count.data() + count.size() || r2.ptr != secs.data() + secs.size() ||
            w.count < 1 || w.count > 1000000000 || w.seconds < 1 || w.seconds > 31536000) {
            *error = "'" + std::string(item) +
                     "': expected COUNT/SECONDS (1..1000000000 per 1..31536000 s), comma separated";
            return std::nullopt;
        }
        out.push_back(w);
        if (out.size() > 16) return *error = "at most 16 windows", std::nullopt;
        pos = end + 1;
    }
    return out;
}

}  // namespace postwarden
