// log.cpp — syslog or stderr sink, and the escaping that makes every call one safe line.
#include "common/log.hpp"

#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>

namespace postwarden::log {

namespace {
std::string program_name = "postwarden";
// "program[pid]: ", made once: getpid() is a system call, and the daemons never fork.
std::string stderr_tag = "postwarden[" + std::to_string(getpid()) + "]: ";
bool use_stderr = true;
std::atomic<Level> min_level{Level::info};
std::mutex stderr_mutex;

int syslog_priority(Level level) {
    switch (level) {
        case Level::debug:
            return LOG_DEBUG;
        case Level::info:
            return LOG_INFO;
        case Level::notice:
            return LOG_NOTICE;
        case Level::warning:
            return LOG_WARNING;
        case Level::error:
            return LOG_ERR;
    }
    return LOG_INFO;
}

// The length of the valid UTF-8 character that starts at s[i] (2 to 4 bytes), 0 when there is
// none: a stray continuation byte, an overlong form, a surrogate, past U+10FFFF, or cut short.
// Characters that are well-formed UTF-8 yet act on a terminal or a log viewer: the C1 controls
// (U+009B is an 8-bit CSI), the line and paragraph separators, and the bidirectional controls
// that reorder what follows them. They are escaped like the C0 controls.
bool controls(std::uint32_t cp) {
    return (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e || cp == 0x200f ||
           (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

std::size_t utf8_length(std::string_view s, std::size_t i) {
    auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = at(i);
    std::size_t n = 0;
    unsigned char low = 0x80, high = 0xbf;  // the second byte's range
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) low = 0xa0;   // overlong
        if (c == 0xed) high = 0x9f;  // surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) low = 0x90;   // overlong
        if (c == 0xf4) high = 0x8f;  // past U+10FFFF
    } else {
        return 0;
    }
    if (i + n > s.size() || at(i + 1) < low || at(i + 1) > high) return 0;
    for (std::size_t k = 2; k < n; ++k)
        if ((at(i + k) & 0xc0) != 0x80) return 0;
    std::uint32_t cp = c & (0xff >> (n + 1));
    for (std::size_t k = 1; k < n; ++k)
        cp = cp << 6 | (at(i + k) & 0x3f);
    return controls(cp) ? 0 : n;
}

// True when every byte of s is printable ASCII (0x20-0x7e), eight bytes at a time: every line
// passes here, and nearly all are plain already (their client fields were escaped).
bool plain_ascii(std::string_view s) {
    constexpr std::uint64_t ones = 0x0101010101010101, high = 0x8080808080808080;
    std::size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
        std::uint64_t w;
        std::memcpy(&w, s.data() + i, 8);
        // a byte below 0x20 borrows into its high bit; one above 0x7e carries into it, or has it
        if ((((w - 0x20 * ones) & ~w) | (w + ones) | w) & high) return false;
    }
    for (; i < s.size(); ++i)
        if (static_cast<unsigned char>(s[i]) < 0x20 || static_cast<unsigned char>(s[i]) > 0x7e)
            return false;
    return true;
}

const char* prefix(Level level) {
    switch (level) {
        case Level::warning:
            return "warning: ";
        case Level::error:
            return "error: ";
        default:
            return "";
    }
}
}  // namespace

void open(std::string_view program, bool to_stderr) {
    program_name = std::string(program);
    stderr_tag = program_name + "[" + std::to_string(getpid()) + "]: ";
    use_stderr = to_stderr;
    if (!use_stderr) openlog(program_name.c_str(), LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void set_min_level(Level level) {
    min_level = level;
}

std::optional<Level> parse_level(std::string_view name) {
    if (name == "debug") return Level::debug;
    if (name == "info") return Level::info;
    if (name == "notice") return Level::notice;
    if (name == "warning") return Level::warning;
    if (name == "error") return Level::error;
    return std::nullopt;
}

void append_printable(std::string& out, std::string_view s, std::size_t max) {
    static const char hex[] = "0123456789abcdef";
    auto plain = [](unsigned char c) { return c >= 0x20 && c < 0x7f; };
    std::size_t used = 0;  // bytes appended for s so far, its pending run included
    std::size_t run = 0;   // where the run of bytes that are appended as they are starts
    std::size_t i = 0;
    while (true) {
        // plain bytes, as many as fit: the usual case, so the loop does nothing else
        const std::size_t stop = i + std::min(s.size() - i, max - used);
        const std::size_t from = i;
        while (i < stop && plain(static_cast<unsigned char>(s[i])))
            ++i;
        used += i - from;
        if (i == s.size()) break;
        const auto c = static_cast<unsigned char>(s[i]);
        const std::size_t n = plain(c) ? 1 : c >= 0x80 ? utf8_length(s, i) : 0;
        const std::size_t width = n ? n : 4;  // a byte escaped as \xNN takes four
        if (used + width > max) {
            out.append(s.data() + run, i - run).append("...");
            return;
        }
        used += width;
        if (n) {
            i += n;
            continue;
        }
        out.append(s.data() + run, i - run).append("\\x");
        out.push_back(hex[c >> 4]);
        out.push_back(hex[c & 15]);
        run = ++i;
    }
    out.append(s.data() + run, s.size() - run);
}

std::string printable(std::string_view text, std::size_t max) {
    std::string out;
    append_printable(out, text, max);
    return out;
}

void write(Level level, std::string_view text) {
    if (level < min_level.load(std::memory_order_relaxed)) return;
    std::string escaped;
    if (text.size() > line_max || !plain_ascii(text)) {
        append_printable(escaped, text, line_max);
        text = escaped;
    }
    if (!use_stderr) {
        syslog(syslog_priority(level), "%s%.*s", prefix(level), static_cast<int>(text.size()),
               text.data());
        return;
    }
    std::string line;
    line.reserve(stderr_tag.size() + 10 + text.size());  // 10: the longest prefix and '\n'
    line.append(stderr_tag).append(prefix(level)).append(text).push_back('\n');
    std::lock_guard lock(stderr_mutex);
    fwrite(line.data(), 1, line.size(), stderr);
    fflush(stderr);
}

}  // namespace postwarden::log
