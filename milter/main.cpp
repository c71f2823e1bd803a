// main.cpp — postwarden-milter: command line and configuration (common/daemon.hpp), the shared
// services, then libmilter; once its socket exists, the socket's permissions and the switch away
// from root (issue 7); and the reload on SIGUSR1.
//
// Signals: the main thread owns them. It blocks them before any thread exists (every thread
// inherits the mask), runs libmilter on a thread of its own and sigwaits: SIGUSR1 reloads,
// SIGTERM, SIGINT and SIGHUP stop gracefully (milter/callbacks.hpp stop_milter, and serve()
// below). libmilter's own signal thread sigwaits SIGHUP, SIGTERM and SIGINT too, to stop at once;
// Linux gives a signal sent to the process to its main thread whenever that thread accepts it, as
// it does while in sigwait, so libmilter only sees one that arrives while a reload or a stop is
// under way — a second SIGTERM then stops at once. Reload is SIGUSR1, not SIGHUP as for policyd,
// because such a SIGHUP would stop the milter; OpenDKIM reloads on SIGUSR1 for the same reason.
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <string>
#include <thread>

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

sigset_t handled_signals() {
    sigset_t set;
    sigemptyset(&set);
    // SIGUSR2: the libmilter thread saying it has ended.
    for (int signo : {SIGUSR1, SIGUSR2, SIGHUP, SIGTERM, SIGINT})
        sigaddset(&set, signo);
    return set;
}

// The libmilter thread's end, as the main thread learns it (namespace scope: the thread may
// outlive serve(), see there).
std::atomic<int> milter_status{1};
std::atomic<bool> milter_ended{false}, main_waits{true};

// Serves on a libmilter thread until it ends, reloading on SIGUSR1 and stopping gracefully on
// SIGTERM, SIGINT or SIGHUP. Returns the exit status.
//
// A graceful stop does not ask libmilter to stop: its stop path races with itself (its signal
// thread locks a mutex its listener may be destroying; ThreadSanitizer reports it), and it
// would wait up to 5 s for its listener to notice. Once the messages in progress are done and
// the callbacks shut, nothing is left for libmilter to do: the process exits, and the kernel
// closes the socket and the idle connections (the MTA applies milter_default_action to any
// later message on them, as for any milter restart).
int serve(postwarden::milter::Services& services, const std::string& path) {
    namespace milter = postwarden::milter;
    const pthread_t main_thread = pthread_self();
    std::thread libmilter([main_thread] {
        milter_status = milter::run_milter();
        milter_ended = true;
        if (main_waits) pthread_kill(main_thread, SIGUSR2);
    });
    const sigset_t set = handled_signals();
    int status = 0;
    while (!milter_ended) {
        int signo = 0;
        if (sigwait(&set, &signo) != 0) continue;
        if (signo == SIGUSR1) {
            if (auto fresh = postwarden::reload_config(path, *services.config(), "milter"))
                services.set_config(std::move(fresh));
        } else if (signo != SIGUSR2) {
            postwarden::log::notice(std::string("stopping on ") + (signo == SIGTERM  ? "SIGTERM"
                                                                   : signo == SIGINT ? "SIGINT"
                                                                                     : "SIGHUP"));
            milter::stop_milter();
            break;
        }
    }
    if (milter_ended) {
        libmilter.join();
        status = milter_status;  // stopped by itself (an error, or a signal during a reload)
    } else {
        main_waits = false;
        libmilter.detach();
    }
    milter::shut_callbacks();
    postwarden::log::notice("stopped");
    return status;
}

}  // namespace

int main(int argc, char** argv) {
    // Before any thread exists (see the top). libmilter blocks its three only in the thread that
    // calls smfi_main, so a thread started earlier — Redis, the metrics endpoint — would take a
    // SIGTERM with its default action and kill the process.
    const sigset_t handled = handled_signals();
    pthread_sigmask(SIG_BLOCK, &handled, nullptr);
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
        // The socket is opened and root given up here, on the main thread: no_new_privs is kept
        // per thread, and this is the thread that lives longest.
        if (!postwarden::milter::open_milter(services) || !secure()) {
            postwarden::milter::shut_callbacks();
            return 1;
        }
        struct stat made {};
        const bool have_socket = !socket_path.empty() && stat(socket_path.c_str(), &made) == 0;
        const int status = serve(services, path);
        // libmilter, not asked to stop, leaves its socket file: remove it, unless it is no longer
        // ours (a new instance may already have replaced it).
        struct stat now {};
        if (have_socket && stat(socket_path.c_str(), &now) == 0 && now.st_ino == made.st_ino &&
            now.st_dev == made.st_dev)
            unlink(socket_path.c_str());
        return status;
    } catch (const std::exception& e) {
        postwarden::log::error(std::string("fatal: ") + e.what());
        return 1;
    }
}
