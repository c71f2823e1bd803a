// fuzz_config.cpp — the configuration loader on hostile text: it must answer with a Config or a
// "FILE:LINE: [section] key: ..." message, never crash or hang.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string error;
    auto config = postwarden::parse_config(
        std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.conf", &error);
    if (!config && error.rfind("fuzz.conf:", 0) != 0)
        __builtin_trap();  // every error names the file
    return 0;
}
