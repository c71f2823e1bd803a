// from_parse.cpp — read_address_list() as a filter, for the differential test against Python's
// email.headerregistry (from_differential.py): From field values on stdin, each ended by a NUL
// byte; one JSON object per value on stdout, in order:
//   {"ok":true,"addresses":[{"local":"…","domain":"…","address":"…"},…]}
//   {"ok":false,"error":"…"}
// Strings are JSON-escaped; bytes of 0x80 and up pass unchanged (UTF-8 in, UTF-8 out).
#include <iostream>
#include <iterator>
#include <string>

#include "common/mail/mail_header.hpp"

namespace {

std::string json(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (u < 0x20 || u == 0x7f) {
            static const char hex[] = "0123456789abcdef";
            out += "\\u00";
            out += hex[u >> 4];
            out += hex[u & 15];
        } else {
            out += c;
        }
    }
    return out + "\"";
}

std::string describe(std::string_view value) {
    auto list = postwarden::read_address_list(value);
    if (!list.ok()) return "{\"ok\":false,\"error\":" + json(list.error) + "}";
    std::string out = "{\"ok\":true,\"addresses\":[";
    for (std::size_t i = 0; i < list.addresses.size(); ++i) {
        const auto& a = list.addresses[i];
        out += (i ? "," : "") + std::string("{\"local\":") + json(a.local) +
               ",\"domain\":" + json(a.domain) + ",\"address\":" + json(a.address()) + "}";
    }
    return out + "]}";
}

}  // namespace

int main() {
    std::string input(std::istreambuf_iterator<char>(std::cin), {});
    std::size_t start = 0;
    while (start < input.size()) {
        auto end = input.find('\0', start);
        if (end == std::string::npos) end = input.size();
        std::cout << describe(std::string_view(input).substr(start, end - start)) << '\n';
        start = end + 1;
    }
    return std::cout.good() ? 0 : 1;
}
