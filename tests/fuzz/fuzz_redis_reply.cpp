// fuzz_redis_reply.cpp — the RESP reply reader on hostile bytes, as a compromised Redis or a man
// in the middle could send them: the input is fed in pieces whose sizes come from the input
// itself, so splits land everywhere, to a reader with the default limits and to one with small
// limits (so the limits themselves are reached). Every reply that comes out is walked, and must
// respect the limits it was read under.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/redis/redis_protocol.hpp"

using namespace postwarden::redis;

namespace {

// Elements in v, itself included; string bytes added to *bytes.
std::size_t walk(const Value& v, std::size_t* bytes) {
    *bytes += v.str.size();
    std::size_t n = 1;
    for (const auto& e : v.elements)
        n += walk(e, bytes);
    return n;
}

void read_all(std::string_view in, std::size_t step, const ReplyLimits& limits) {
    ReplyReader reader(limits);
    while (!in.empty()) {
        auto piece = in.substr(0, step);
        in.remove_prefix(piece.size());
        if (!reader.feed(piece.data(), piece.size())) return;
        Value v;
        for (;;) {
            auto status = reader.next(v);
            if (status == ReplyReader::Status::error) {
                if (reader.error().empty()) std::abort();  // an error always says why
                return;
            }
            if (status == ReplyReader::Status::incomplete) break;
            std::size_t bytes = 0;
            if (walk(v, &bytes) > limits.max_elements || bytes > limits.max_bytes) std::abort();
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    const std::size_t step = size ? data[0] % 61 + 1 : 1;
    read_all(in, step, ReplyLimits{});
    read_all(in, step, ReplyLimits{16, 64, 16 * sizeof(Value) + 256});
    return 0;
}
