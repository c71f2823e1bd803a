// redis_protocol.hpp — RESP encoding and decoding for the Redis client: hiredis' reader decodes
// (a protocol parser that never touches I/O: bytes in, Values out, like Redis' own); encoding is
// a few lines of our own (see append_command).
//
// Entry points: append_command (encode), ReplyReader (decode incrementally).
// Threading: none; each ReplyReader belongs to one connection.
// Internal to common/redis*.cpp; callers use common/redis.hpp.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/redis.hpp"

struct redisReader;

namespace postwarden::redis {

// Appends the RESP encoding of argv (binary-safe) to out.
void append_command(std::string& out, const std::vector<std::string>& argv);
void append_command(std::string& out, std::initializer_list<std::string_view> argv);

// Incremental reply decoder. Bytes may be fed in any split; replies come out whole, built
// directly as Values (no intermediate redisReply copy). After an error the reader is unusable:
// the connection it decodes must be dropped.
class ReplyReader {
  public:
    enum class Status { reply, incomplete, error };

    ReplyReader();
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
    std::unique_ptr<redisReader, Free> reader_;
};

}  // namespace postwarden::redis
