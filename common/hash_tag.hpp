// hash_tag.hpp — text placed inside a Redis Cluster hash tag ("{...}") of a key name: braces
// would end or move the tag, so they, and '%' to keep the encoding unambiguous, are
// percent-encoded. Two different texts never give the same key; every key built around one
// text lands in one hash slot.
//
// Entry points: append_hash_tag_text. Threading: pure.
#pragma once

#include <string>
#include <string_view>

namespace postwarden {

inline void append_hash_tag_text(std::string& out, std::string_view text) {
    for (char c : text) {
        if (c == '{')
            out += "%7b";
        else if (c == '}')
            out += "%7d";
        else if (c == '%')
            out += "%25";
        else
            out.push_back(c);
    }
}

}  // namespace postwarden
