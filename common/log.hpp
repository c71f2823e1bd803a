// log.hpp — one logging sink for every program: syslog (facility mail, Postfix style) or, with
// -f, standard error with the same "program[pid]: text" shape. Thread-safe: each call writes
// one whole line.
//
// Decision lines (SPEC §6) are built by the caller in a fixed field order and logged at info.
#pragma once

#include <optional>
#include <string_view>

namespace postwarden::log {

enum class Level { debug, info, notice, warning, error };

// Called once at start. to_stderr: log to standard error (foreground mode) instead of syslog.
void open(std::string_view program, bool to_stderr);
void set_min_level(Level level);
// "debug", "info", "notice", "warning", "error"; nullopt for anything else.
std::optional<Level> parse_level(std::string_view name);

void write(Level level, std::string_view text);

inline void debug(std::string_view text) {
    write(Level::debug, text);
}
inline void info(std::string_view text) {
    write(Level::info, text);
}
inline void notice(std::string_view text) {
    write(Level::notice, text);
}
inline void warning(std::string_view text) {
    write(Level::warning, text);
}
inline void error(std::string_view text) {
    write(Level::error, text);
}

}  // namespace postwarden::log
