// redis_protocol.hpp — RESP encoding and decoding for the Redis client: hiredis' reader decodes
// (a protocol parser that never touches I/O: bytes in, Values out, like Redis' own); encoding is
// a few lines of our own (see append_command).
//
// Entry points: append_command (encode), ReplyReader (decode incrementally).
// Threading: none; each ReplyReader belongs to one connection.
// Internal to common/redis/redis*.cpp; callers use common/redis/redis.hpp.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/redis/redis_types.hpp"

struct redisReader;

namespace postwarden::redis {

// Appends the RESP encoding of argv (binary-safe) to out.
void append_command(std::string& out, const std::vector<std::string>& argv);
void append_command(std::string& out, std::initializer_list<std::string_view> argv);

// What one reply may hold: whoever controls the bytes (a compromised Redis, a man in the middle
// on a plain TCP link) must not make the reader allocate more than this. The defaults lie far
// above anything postwarden reads (a list of 10^6 members, the CLI's SMEMBERS of one). Nesting
// is bounded by hiredis (7 levels), and an array announced as huge costs nothing until its
// elements arrive: room is reserved for no more elements than the bytes received could hold.
struct ReplyLimits {
    std::size_t max_elements = std::size_t{1} << 22;  // values in one reply, nested ones included
    std::size_t max_string = std::size_t{32} << 20;   // bytes of one string (or line) on the wire
    // Bytes one decoded reply takes in memory: its strings plus sizeof(Value) per element.
    std::size_t max_bytes = std::size_t{256} << 20;
};

struct ReplyBudget;  // what the reply in progress has used of the limits (redis_protocol.cpp)

// Incremental reply decoder. Bytes may be fed in any split; replies come out whole, built
// directly as Values (no intermediate redisReply copy). A reply beyond the limits is an error
// that says which limit. After an error the reader is unusable: the connection it decodes must
// be dropped. Callers take every complete reply (next() until incomplete) after each feed(): the
// string limit bounds what stays buffered of the reply in progress.
class ReplyReader {
  public:
    enum class Status { reply, incomplete, error };

    explicit ReplyReader(ReplyLimits limits = {});
    ~ReplyReader();
    ReplyReader(const ReplyReader&) = delete;
    ReplyReader& operator=(const ReplyReader&) = delete;

    // False on error (see error()).
    bool feed(const char* data, std::size_t size);
    // Moves the next complete reply into out, or says that more bytes are needed, or fails.
    Status next(Value& out);
    std::string error() const;

  private:
    struct Free {
        void operator()(redisReader* reader) const;
    };
    std::unique_ptr<ReplyBudget> budget_;
    std::unique_ptr<redisReader, Free> reader_;
};

}  // namespace postwarden::redis
