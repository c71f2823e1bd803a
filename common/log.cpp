// log.cpp — syslog or stderr sink. Text from clients is logged with control characters escaped
// by the callers' formatting helpers; here we only guarantee one line per call.
#include "common/log.hpp"

#include <syslog.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
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

void write(Level level, std::string_view text) {
    if (level < min_level.load(std::memory_order_relaxed)) return;
    if (!use_stderr) {
        syslog(syslog_priority(level), "%s%.*s", prefix(level), static_cast<int>(text.size()),
               text.data());
        return;
    }
    std::string line = stderr_tag + prefix(level);
    line.append(text);
    line.push_back('\n');
    std::lock_guard lock(stderr_mutex);
    fwrite(line.data(), 1, line.size(), stderr);
    fflush(stderr);
}

}  // namespace postwarden::log
