// scripts.hpp — the Lua scripts embedded at build time from common/redis/lua/*.lua.
//
// Each script is one atomic decision in Redis (STYLE §3); the file's header documents its KEYS,
// ARGV, the keys it writes with their TTLs, its return shape and why a replay is harmless.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace postwarden {

struct EmbeddedScript {
    std::string_view name;  // file name without ".lua"
    std::string_view text;
};

const std::vector<EmbeddedScript>& embedded_scripts();

// The text of the named script; throws std::out_of_range when there is none.
std::string_view script_text(std::string_view name);

}  // namespace postwarden
