// config.hpp — postwarden.conf (SPEC §2): the typed configuration every program reads, and the
// loader that fills it from the INI file.
//
// The keys are one table (config_table.cpp: section, name, default, one line of doc, setter);
// the parser, --check-config, the shipped conf/postwarden.conf and its test all follow from it.
// A loaded Config is immutable and shared as shared_ptr<const Config>: a reload (SIGHUP) swaps
// the pointer and sessions keep the snapshot they started with. The types (Config and what it
// holds) are in config_types.hpp, which the key table includes without including the loader.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/config_types.hpp"

namespace postwarden {

// Every key of the table, for documentation and the shipped-file test.
const std::vector<ConfigKeyInfo>& config_keys();

// A Config holding every default.
Config default_config();

// Loads `path`. On any error returns nullptr and sets *error to "FILE:LINE: [section] key: what is
// wrong" (SPEC §2). Never touches the network.
std::shared_ptr<const Config> load_config(const std::string& path, std::string* error);
// The same from text (tests, fuzzing); `name` stands in for the file name in messages.
std::shared_ptr<const Config> parse_config(std::string_view text, std::string_view name,
                                           std::string* error);

}  // namespace postwarden
