// scripts.cpp — lookup of the embedded Lua scripts by name.
#include "common/redis/scripts.hpp"

#include <stdexcept>

namespace postwarden {

std::string_view script_text(std::string_view name) {
    for (const auto& s : embedded_scripts())
        if (s.name == name) return s.text;
    throw std::out_of_range("no embedded script named " + std::string(name));
}

}  // namespace postwarden
