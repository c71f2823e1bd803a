// fuzz_input.hpp — cutting a fuzz input into the parts a target needs, and building DNS reply
// packets, shared by the targets. Inputs are text-like so that seed files stay readable:
// lines() splits at '\n', blocks() at lines that are exactly "--".
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/dns/dns.hpp"

namespace postwarden::fuzz {

inline std::vector<std::string_view> split(std::string_view text, std::string_view separator) {
    std::vector<std::string_view> parts;
    while (true) {
        auto at = text.find(separator);
        parts.push_back(text.substr(0, at));
        if (at == std::string_view::npos) return parts;
        text.remove_prefix(at + separator.size());
    }
}

inline std::vector<std::string_view> lines(std::string_view text) {
    return split(text, "\n");
}

inline std::vector<std::string_view> blocks(std::string_view text) {
    return split(text, "\n--\n");
}

// POSTWARDEN_FUZZ_VERBOSE=1: targets print what they decided, to check that seeds reach deep.
inline bool verbose() {
    static const bool on = std::getenv("POSTWARDEN_FUZZ_VERBOSE") != nullptr;
    return on;
}

// An answer with no records: nxdomain, nodata or temp_error.
inline dns::Answer status_only(dns::Status status) {
    dns::Answer answer;
    answer.status = status;
    return answer;
}

// A reply packet: header with `rcode`, the question `name`/`type`, and one answer record of
// `type` per rdata, its owner a compression pointer to the question.
inline std::vector<unsigned char> reply_packet(std::string_view name, std::uint16_t type, int rcode,
                                               const std::vector<std::string>& rdatas) {
    std::vector<unsigned char> p = {0x12, 0x34, 0x81, static_cast<unsigned char>(0x80 | rcode),
                                    0,    1,    0,    static_cast<unsigned char>(rdatas.size()),
                                    0,    0,    0,    0};
    std::size_t start = 0;
    while (start < name.size()) {
        auto dot = name.find('.', start);
        if (dot == std::string_view::npos) dot = name.size();
        auto label = name.substr(start, std::min<std::size_t>(dot - start, 63));
        p.push_back(static_cast<unsigned char>(label.size()));
        p.insert(p.end(), label.begin(), label.end());
        start = dot + 1;
    }
    p.insert(p.end(), {0, static_cast<unsigned char>(type >> 8),
                       static_cast<unsigned char>(type & 0xff), 0, 1});
    for (const auto& rdata : rdatas) {
        auto size = std::min<std::size_t>(rdata.size(), 0xffff);
        p.insert(p.end(),
                 {0xc0, 0x0c, static_cast<unsigned char>(type >> 8),
                  static_cast<unsigned char>(type & 0xff), 0, 1, 0, 0, 1, 0,
                  static_cast<unsigned char>(size >> 8), static_cast<unsigned char>(size & 0xff)});
        p.insert(p.end(), rdata.begin(), rdata.begin() + static_cast<std::ptrdiff_t>(size));
    }
    return p;
}

// TXT rdata: the text in strings of at most 255 bytes.
inline std::string txt_rdata(std::string_view text) {
    std::string rdata;
    do {
        auto chunk = text.substr(0, 255);
        rdata.push_back(static_cast<char>(chunk.size()));
        rdata.append(chunk);
        text.remove_prefix(chunk.size());
    } while (!text.empty());
    return rdata;
}

}  // namespace postwarden::fuzz
