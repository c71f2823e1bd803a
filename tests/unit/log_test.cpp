// log_test.cpp — common/log: whatever text a caller passes, from a client or not, comes out as one
// line of printable text, each field and the line cut at their caps.
#include "common/log.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

using namespace postwarden;

namespace {

// What f makes the log write to standard error (fd 2 points into a temporary file meanwhile).
std::string stderr_of(const std::function<void()>& f) {
    std::fflush(stderr);
    char path[] = "/tmp/postwarden-log-test.XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    unlink(path);
    int saved = dup(2);
    dup2(fd, 2);
    f();
    std::fflush(stderr);
    dup2(saved, 2);
    close(saved);
    std::string out;
    char buffer[65536];
    lseek(fd, 0, SEEK_SET);
    for (ssize_t n; (n = read(fd, buffer, sizeof buffer)) > 0;)
        out.append(buffer, static_cast<std::size_t>(n));
    close(fd);
    return out;
}

// True when every byte is printable ASCII: what a line of escaped non-UTF-8 input must be.
bool printable_ascii(const std::string& s) {
    for (unsigned char c : s)
        if (c < 0x20 || c > 0x7e) return false;
    return true;
}

// True when s is UTF-8 without control characters (C0, DEL, C1, separators, bidi controls) (checked
// as std::mbrtowc would not be, with the ranges of RFC 3629 spelled out, so that it does not share
// code with the log).
bool printable_utf8(const std::string& s) {
    for (std::size_t i = 0; i < s.size();) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x20 || c == 0x7f) return false;
        std::size_t n = c < 0x80   ? 1
                        : c < 0xc2 ? 0
                        : c < 0xe0 ? 2
                        : c < 0xf0 ? 3
                        : c < 0xf5 ? 4
                                   : 0;
        if (n == 0 || i + n > s.size()) return false;
        std::uint32_t cp = n == 1 ? c : c & (0xff >> (n + 1));
        for (std::size_t k = 1; k < n; ++k) {
            auto b = static_cast<unsigned char>(s[i + k]);
            if ((b & 0xc0) != 0x80) return false;
            cp = cp << 6 | (b & 0x3f);
        }
        const std::uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < least[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        // C1 controls, line and paragraph separators, bidirectional controls
        if ((cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e || cp == 0x200f ||
            (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069))
            return false;
        i += n;
    }
    return true;
}

}  // namespace

TEST_CASE("log: random bytes come out as printable UTF-8 within the cap", "[log]") {
    std::uint32_t state = 12345;  // a fixed seed: the same inputs every run
    auto next = [&] { return state = state * 1103515245 + 12345, state >> 16; };
    for (int round = 0; round < 20000; ++round) {
        std::string in;
        const auto size = next() % 300;
        for (std::uint32_t i = 0; i < size; ++i)  // biased to the bytes UTF-8 is made of
            in.push_back(static_cast<char>(next() % 3 == 0 ? 0xc0 + next() % 0x40 : next() % 256));
        const std::size_t max = 1 + next() % 250;
        auto out = log::printable(in, max);
        INFO(round);
        REQUIRE(printable_utf8(out));
        REQUIRE(out.size() <= max + 3);
        if (in.size() * 4 <= max) REQUIRE(out == log::printable(in, in.size() * 4));  // not cut
    }
}

TEST_CASE("log: every control byte and DEL is escaped, printable ASCII is kept", "[log]") {
    for (int c = 0; c < 0x20; ++c) {
        char want[16];
        std::snprintf(want, sizeof want, "a\\x%02xb", c);
        CHECK(log::printable("a" + std::string(1, static_cast<char>(c)) + "b") == want);
    }
    CHECK(log::printable("a\x7f"
                         "b") == "a\\x7fb");
    std::string ascii;
    for (int c = 0x20; c < 0x7f; ++c)
        ascii.push_back(static_cast<char>(c));
    CHECK(log::printable(ascii) == ascii);
    // a forged line stays inside the field
    CHECK(log::printable("x\r\nNOQUEUE: action=REJECT\x1b[2K") ==
          "x\\x0d\\x0aNOQUEUE: action=REJECT\\x1b[2K");
}

TEST_CASE("log: valid UTF-8 is kept, every other byte above 0x7f is escaped", "[log]") {
    CHECK(log::printable("j\xc3\xbcrgen") == "j\xc3\xbcrgen");
    CHECK(log::printable("\xe2\x82\xac \xf0\x9f\x93\xa7 \xf4\x8f\xbf\xbf") ==
          "\xe2\x82\xac \xf0\x9f\x93\xa7 \xf4\x8f\xbf\xbf");
    CHECK(log::printable("\x80") == "\\x80");                             // a stray continuation
    CHECK(log::printable("\xc0\xaf") == "\\xc0\\xaf");                    // an overlong '/'
    CHECK(log::printable("\xe0\x80\xaf") == "\\xe0\\x80\\xaf");           // overlong, three bytes
    CHECK(log::printable("\xed\xa0\x80") == "\\xed\\xa0\\x80");           // a surrogate
    CHECK(log::printable("\xf4\x90\x80\x80") == "\\xf4\\x90\\x80\\x80");  // past U+10FFFF
    CHECK(log::printable("\xf8\x88\x80\x80\x80") == "\\xf8\\x88\\x80\\x80\\x80");
    CHECK(log::printable("\xe2\x82") == "\\xe2\\x82");  // cut short at the end
    CHECK(log::printable("\xe2\x82x") == "\\xe2\\x82x");
    CHECK(log::printable("\xc3\x1b") == "\\xc3\\x1b");
    CHECK(log::printable("\xff\xfe") == "\\xff\\xfe");
}

TEST_CASE("log: a long value is cut at its cap, never inside an escape or a character", "[log]") {
    CHECK(log::printable(std::string(100000, 'a')) == std::string(200, 'a') + "...");
    CHECK(log::printable(std::string(200, 'a')) == std::string(200, 'a'));  // fits: no mark
    CHECK(log::printable(std::string(196, 'a') + "\x01") == std::string(196, 'a') + "\\x01");
    CHECK(log::printable(std::string(197, 'a') + "\x01") == std::string(197, 'a') + "...");
    CHECK(log::printable(std::string(199, 'a') + "\xc3\xbc") == std::string(199, 'a') + "...");
    CHECK(log::printable(std::string(198, 'a') + "\xc3\xbc") == std::string(198, 'a') + "\xc3\xbc");
    CHECK(log::printable(std::string(20, '\x1b'), 10) == "\\x1b\\x1b...");
    std::string line = "sender=<";
    log::append_printable(line, std::string(5000, '\r'));
    CHECK(line.size() == 8 + 200 + 3);
    CHECK(line.substr(line.size() - 7) == "\\x0d...");
}

TEST_CASE("log: every call is one line of printable text, at most line_max long", "[log]") {
    log::open("unit", true);
    const std::string tag = "unit[" + std::to_string(getpid()) + "]: ";
    CHECK(stderr_of([] { log::info("plain text, as it is"); }) == tag + "plain text, as it is\n");

    std::string every_byte;
    for (int c = 0; c < 256; ++c)
        every_byte.push_back(static_cast<char>(c));
    auto out = stderr_of([&] {
        log::warning("request type 'x\r" + tag + "NOQUEUE: action=REJECT\n\x1b[1A" + every_byte +
                     std::string(100000, 'y'));
    });
    REQUIRE(!out.empty());
    CHECK(out.back() == '\n');
    out.pop_back();
    CHECK(out.find('\n') == std::string::npos);
    CHECK(printable_ascii(out));
    CHECK(out.rfind(tag + "warning: request type 'x\\x0d" + tag +
                        "NOQUEUE: action=REJECT\\x0a\\x1b[1A\\x00\\x01",
                    0) == 0);
    CHECK(out.size() == tag.size() + 9 + log::line_max + 3);  // "warning: ", the text, "..."
    CHECK(out.substr(out.size() - 4) == "y...");
}

TEST_CASE("log: UTF-8 that acts on a terminal or reorders text is escaped", "[log]") {
    CHECK(log::printable("x\xc2\x9b"
                         "2J") == "x\\xc2\\x9b2J");  // U+009B, an 8-bit CSI
    CHECK(log::printable("a\xc2\x85"
                         "b") == "a\\xc2\\x85b");  // U+0085, NEL
    CHECK(log::printable("a\xe2\x80\xa8"
                         "b") == "a\\xe2\\x80\\xa8b");  // U+2028
    CHECK(log::printable("\xe2\x80\xae"
                         "gpj.exe") == "\\xe2\\x80\\xaegpj.exe");  // U+202E
    CHECK(log::printable("\xe2\x81\xa6"
                         "x") == "\\xe2\\x81\\xa6x");                 // U+2066
    CHECK(log::printable("\xc2\xa0\xc2\xbf") == "\xc2\xa0\xc2\xbf");  // U+00A0, U+00BF stay
}
