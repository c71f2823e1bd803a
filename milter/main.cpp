// main.cpp — postwarden-milter: command line and configuration (common/daemon.hpp), the shared
// services, then libmilter; once its socket exists, the socket's permissions and the switch away
// from root (issue 7).
#include <sys/stat.h>

#include <string>

#include "common/daemon.hpp"
#include "common/log.hpp"
#include "milter/callbacks.hpp"
#include "milter/services.hpp"

namespace {

// The file of a unix: (or local:) milter socket; "" for inet ones.
std::string unix_socket_path(const std::string& listen) {
    for (const char* scheme : {"unix:", "local:"})
        if (listen.rfind(scheme, 0) == 0)
            return listen.substr(std::char_traits<char>::length(scheme));
    return "";
}

}  // namespace

int main(int argc, char** argv) {
    std::string path;
    int exit_code = 0;
    auto config = postwarden::start_daemon("postwarden-milter", argc, argv, &path, &exit_code);
    if (!config) return exit_code;
    try {
        const auto& m = config->milter;
        const std::string socket_path = unix_socket_path(m.listen);
        // libmilter creates the socket with the umask: mask what socket_mode does not grant, so
        // the socket never exists with more, not even until the chmod below.
        const mode_t umask_before = umask(~m.socket_mode & 0777);
        if (socket_path.empty()) umask(umask_before);
        auto secure = [&] {
            umask(umask_before);
            std::string why;
            if (!socket_path.empty())
                why = postwarden::set_socket_access(socket_path, m.socket_mode, m.socket_group,
                                                    m.user);
            if (!why.empty()) {
                postwarden::log::error("[milter] socket_mode/socket_group: " + why);
                return false;
            }
            if (why = postwarden::drop_privileges(m.user); !why.empty()) {
                postwarden::log::error("[milter] user: " + why);
                return false;
            }
            return true;
        };
        postwarden::milter::Services services(config);
        return postwarden::milter::run_milter(services, secure);
    } catch (const std::exception& e) {
        postwarden::log::error(std::string("fatal: ") + e.what());
        return 1;
    }
}
