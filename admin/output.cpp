// output.cpp — formatting and reply helpers the commands share; see commands.hpp.
#include <algorithm>

#include "admin/commands.hpp"

namespace postwarden::admin {

std::string printable(std::string_view text) {
    static const char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : text) {
        if (c >= 0x20 && c != 0x7f && c != '\\') {
            out.push_back(static_cast<char>(c));
        } else if (c == '\\') {
            out += "\\\\";
        } else {
            out += "\\x";
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 15]);
        }
    }
    return out;
}

std::string columns(const std::vector<std::vector<std::string>>& rows) {
    std::vector<std::size_t> width;
    for (const auto& row : rows)
        for (std::size_t i = 0; i < row.size(); ++i) {
            if (width.size() <= i) width.push_back(0);
            width[i] = std::max(width[i], row[i].size());
        }
    std::string out;
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t i = 0; i < row.size(); ++i) {
            line += row[i];
            if (i + 1 < row.size()) line.append(width[i] - row[i].size() + 2, ' ');
        }
        while (!line.empty() && line.back() == ' ')
            line.pop_back();
        out += line + "\n";
    }
    return out;
}

std::vector<std::string> strings_of(const redis::Value& value) {
    std::vector<std::string> out;
    if (value.type != redis::Value::Type::array) return out;
    for (const auto& e : value.elements)
        if (e.type == redis::Value::Type::string) out.push_back(e.str);
    return out;
}

std::map<std::string, std::string> hash_of(const redis::Value& value) {
    std::map<std::string, std::string> out;
    auto flat = strings_of(value);
    for (std::size_t i = 0; i + 1 < flat.size(); i += 2)
        out[flat[i]] = flat[i + 1];
    return out;
}

}  // namespace postwarden::admin
