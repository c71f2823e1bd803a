// redis_script.cpp — Script: a Lua text and its SHA1 as Redis computes it for EVALSHA, so the
// first call needs no SCRIPT LOAD round trip and a NOSCRIPT reply is the only reload trigger.
#include <boost/uuid/detail/sha1.hpp>
#include <cstdio>

#include "common/redis/redis.hpp"

namespace postwarden::redis {

namespace {
std::string sha1_hex(const std::string& text) {
    boost::uuids::detail::sha1 hash;
    hash.process_bytes(text.data(), text.size());
    boost::uuids::detail::sha1::digest_type digest;
    hash.get_digest(digest);
    char hex[41];
    for (int i = 0; i < 5; ++i)
        std::snprintf(hex + 8 * i, 9, "%08x", digest[i]);
    return std::string(hex, 40);
}
}  // namespace

Script::Script(std::string text)
    : text_(std::make_shared<const std::string>(std::move(text))), sha1_(sha1_hex(*text_)) {}

}  // namespace postwarden::redis
