// dkim_keys.cpp — the signing keys, kept parsed; see dkim_keys.hpp.
#include "milter/dkim_keys.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace postwarden::milter {

bool KeyStore::Identity::operator==(const Identity& o) const {
    return dev == o.dev && ino == o.ino && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
           mtime.tv_nsec == o.mtime.tv_nsec && ctime.tv_sec == o.ctime.tv_sec &&
           ctime.tv_nsec == o.ctime.tv_nsec;
}

std::shared_ptr<const dkim::PrivateKey> KeyStore::get(const std::string& path, std::string* why) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
        *why = "no key file " + path + ": " + std::strerror(errno);
        return nullptr;
    }
    const Identity now{st.st_dev, st.st_ino, st.st_size, st.st_mtim, st.st_ctim};
    {
        std::lock_guard lock(mutex_);
        if (auto it = entries_.find(path); it != entries_.end() && it->second.identity == now) {
            *why = it->second.why;
            return it->second.key;
        }
    }
    // Read outside the lock; two threads may both read a changed file, which is harmless.
    Entry entry{now, nullptr, ""};
    if (auto key = dkim::read_key_file(path, geteuid(), &entry.why))
        entry.key = std::make_shared<const dkim::PrivateKey>(std::move(*key));
    *why = entry.why;
    auto key = entry.key;
    std::lock_guard lock(mutex_);
    if (entries_.size() >= max_entries) entries_.clear();
    entries_[path] = std::move(entry);
    return key;
}

void KeyStore::clear() {
    std::lock_guard lock(mutex_);
    entries_.clear();
}

}  // namespace postwarden::milter
