// dkim_keys.hpp — the signing keys, read from <key_dir>/<domain>/<selector>.key once and kept
// parsed: a message costs a stat(2) per key, not a read and a parse. A key is read again when
// its file changes (device, inode, size, mtime or ctime differ: a replaced, edited or chmodded
// file) and everything is forgotten on SIGHUP (clear()). A refused or missing key is remembered
// the same way, so a bad file is not parsed again for each message; its reason is given each time.
//
// Entry points: KeyStore::get(), clear().
//
// Threading: any thread; one mutex, not held while a file is read.
//
// Memory: at most max_entries keys (domain, selector) are kept; past it the store is emptied
// and starts again (a selector name comes from Redis: an operator error must not grow it).
#pragma once

#include <sys/stat.h>

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/mail/dkim_key.hpp"

namespace postwarden::milter {

class KeyStore {
  public:
    static constexpr std::size_t max_entries = 4096;

    // The key at `path` (dkim::key_path), or null with *why when it is missing or refused.
    // Keys must be owned by the effective user of the process (the milter's user).
    std::shared_ptr<const dkim::PrivateKey> get(const std::string& path, std::string* why);
    void clear();

  private:
    struct Identity {
        dev_t dev = 0;
        ino_t ino = 0;
        off_t size = 0;
        timespec mtime{}, ctime{};
        bool operator==(const Identity& o) const;
    };
    struct Entry {
        Identity identity;
        std::shared_ptr<const dkim::PrivateKey> key;
        std::string why;
    };
    std::mutex mutex_;
    std::unordered_map<std::string, Entry> entries_;
};

}  // namespace postwarden::milter
