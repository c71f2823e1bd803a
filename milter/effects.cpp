// effects.cpp — client text for replies and log lines; see effects.hpp.
#include "milter/effects.hpp"

namespace postwarden::milter {

std::string printable(std::string_view s) {
    std::string out;
    for (unsigned char c : s.substr(0, 256))
        out.push_back(c < ' ' || c == 0x7f ? '?' : char(c));
    return out;
}

std::string log_prefix(std::string_view queue_id) {
    return (queue_id.empty() ? std::string("NOQUEUE") : printable(queue_id)) + ": ";
}

}  // namespace postwarden::milter
