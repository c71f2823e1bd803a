// nodelay.cpp — see nodelay.hpp.
#include "milter/nodelay.hpp"

#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdlib>

namespace postwarden::milter {

namespace {

bool is_tcp_listener(int fd) {
    int value = 0;
    socklen_t size = sizeof value;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &size) != 0 || !value) return false;
    size = sizeof value;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &value, &size) != 0) return false;
    return value == AF_INET || value == AF_INET6;
}

}  // namespace

std::vector<int> listening_sockets() {
    std::vector<int> out;
    DIR* dir = opendir("/proc/self/fd");
    if (!dir) return out;
    int own = dirfd(dir);
    while (dirent* entry = readdir(dir)) {
        char* end = nullptr;
        long fd = std::strtol(entry->d_name, &end, 10);
        if (end == entry->d_name || *end != '\0' || fd == own) continue;
        if (is_tcp_listener(static_cast<int>(fd))) out.push_back(static_cast<int>(fd));
    }
    closedir(dir);
    return out;
}

int set_nodelay_on_new_listeners(const std::vector<int>& before) {
    int set = 0;
    for (int fd : listening_sockets()) {
        if (std::find(before.begin(), before.end(), fd) != before.end()) continue;
        int on = 1;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) == 0) ++set;
    }
    return set;
}

}  // namespace postwarden::milter
