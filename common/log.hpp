// log.hpp — one logging sink for every program: syslog (facility mail, Postfix style) or, with
// -f, standard error with the same "program[pid]: text" shape. Thread-safe: each call writes
// one whole line.
//
// Text in a line may come from clients (addresses, HELO names, header values, request
// attributes), so write() makes whatever it is given one safe line: control bytes (CR, LF, ESC
// ...), DEL, the C1, separator and bidirectional control characters, and bytes that are not
// UTF-8 become \xNN (each byte), and the text is cut at line_max bytes. No
// caller can forge or overlay another line, or fill the log with one request. Decision lines
// (SPEC §6) are built by the caller in a fixed field order, each client field through
// append_printable, so that one long value cannot push the fields after it out of the line.
//
// Entry points: open, set_min_level, parse_level, write (and debug ... error), append_printable,
// printable.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace postwarden::log {

// Most bytes one client field takes in a line, escapes included, before "..." marks the cut.
constexpr std::size_t field_max = 200;
// Most bytes of a line's text (after escaping, before "..."); the program tag comes on top.
constexpr std::size_t line_max = 4096;

// Appends text to out as write() logs it: control bytes 0x00-0x1f, DEL, the characters U+0080-
// U+009F, U+061C, U+200E, U+200F, U+2028-U+202E and U+2066-U+2069 (C1, separators, bidi), and
// bytes that are not part of a valid UTF-8 character become \xNN. At most max bytes are appended,
// then "..." if text did not fit; the cut never splits an escape or a character. Backslashes are
// left alone, as Postfix does: "\x0a" in a line may be the client's own text.
void append_printable(std::string& out, std::string_view text, std::size_t max = field_max);
std::string printable(std::string_view text, std::size_t max = field_max);

enum class Level { debug, info, notice, warning, error };

// Called once at start. to_stderr: log to standard error (foreground mode) instead of syslog.
void open(std::string_view program, bool to_stderr);
void set_min_level(Level level);
// "debug", "info", "notice", "warning", "error"; nullopt for anything else.
std::optional<Level> parse_level(std::string_view name);

// Logs text as one line: escaped and cut as append_printable does, at line_max bytes.
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
