// config_table.hpp — internal to the config loader: the key table and the value parsers it uses.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/config_types.hpp"

namespace postwarden::config_detail {

// What a setter fills: the Config, plus the per-check fail modes before inheritance.
struct Building {
    Config config;
    std::optional<FailMode> lists_fail_mode, greylist_fail_mode, quota_fail_mode;
};

using Setter = bool (*)(Building&, std::string_view value, std::string* error);

struct Key {
    ConfigKeyInfo info;
    Setter set;
};

const std::vector<Key>& key_table();

}  // namespace postwarden::config_detail
