// main.cpp — postwarden-milter: command line and configuration (common/daemon.hpp), the shared
// services, then libmilter; its unix socket created with its owner, group and mode and the switch
// away from root; and the reload on SIGHUP (SPEC §6: every daemon reloads on SIGHUP) or SIGUSR1.
//
// Signals: the main thread owns them. It blocks them before any thread exists (every thread
// inherits the mask), runs libmilter on a thread of its own and sigwaits SIGTERM, SIGINT and
// SIGUSR1: SIGUSR1 reloads, SIGTERM and SIGINT stop gracefully (milter/callbacks.hpp stop_milter,
// and serve() below). libmilter's own signal thread sigwaits SIGHUP, SIGTERM and SIGINT too, and
// stops the milter on any of them. So SIGHUP is never left blocked on the main thread: it has a
// handler there, unblocked on that thread alone, and Linux gives a signal sent to the process to
// its main thread whenever that thread does not block it — during a reload as well — so
// libmilter's thread never takes a SIGHUP and a burst of them only reloads. A SIGTERM that
// arrives while a reload or a stop is under way goes to libmilter, which stops at once.
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <initializer_list>
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

sigset_t signal_set(std::initializer_list<int> signals) {
    sigset_t set;
    sigemptyset(&set);
    for (int signo : signals)
        sigaddset(&set, signo);
    return set;
}

// Every signal the milter handles; SIGUSR2: the libmilter thread saying it has ended.
sigset_t handled_signals() {
    return signal_set({SIGUSR1, SIGUSR2, SIGHUP, SIGTERM, SIGINT});
}

// Set by the SIGHUP handler, which runs on the main thread only (see the top).
volatile std::sig_atomic_t hangup = 0;

extern "C" void on_hangup(int) {
    hangup = 1;
}

void reload(postwarden::milter::Services& services, const std::string& path) {
    services.keys.clear();  // every DKIM key file is read again, even if the file below is bad
    if (auto fresh = postwarden::reload_config(path, *services.config(), "milter"))
        services.set_config(std::move(fresh));
}

// The libmilter thread's end, as the main thread learns it (namespace scope: the thread may
// outlive serve(), see there).
std::atomic<int> milter_status{1};
std::atomic<bool> milter_ended{false}, main_waits{true};

// Serves on a libmilter thread until it ends, reloading on SIGHUP or SIGUSR1 and stopping
// gracefully on SIGTERM or SIGINT. Returns the exit status.
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
    // SIGHUP: a handler, unblocked on this thread alone (libmilter's thread started blocked).
    struct sigaction action {};
    action.sa_handler = on_hangup;
    sigemptyset(&action.sa_mask);
    sigaction(SIGHUP, &action, nullptr);
    const sigset_t hup = signal_set({SIGHUP});
    pthread_sigmask(SIG_UNBLOCK, &hup, nullptr);
    const sigset_t set = signal_set({SIGUSR1, SIGUSR2, SIGTERM, SIGINT});
    int status = 0;
    while (!milter_ended) {
        // The handler interrupts the wait (EINTR). One that lands between the check of hangup
        // and the wait, or during a reload, is seen within a second: the wait is bounded.
        const timespec second{1, 0};
        const int signo = sigtimedwait(&set, nullptr, &second);
        if (hangup) {
            hangup = 0;
            reload(services, path);
        }
        if (signo == SIGUSR1) {
            reload(services, path);
        } else if (signo == SIGTERM || signo == SIGINT) {
            postwarden::log::notice(std::string("stopping on ") +
                                    (signo == SIGTERM ? "SIGTERM" : "SIGINT"));
            pthread_sigmask(SIG_BLOCK, &hup, nullptr);  // no reload while stopping
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
        postwarden::UnixSocketAccess access;
        if (!socket_path.empty()) {
            if (auto why = postwarden::unix_socket_access(socket_path, m.socket_mode,
                                                          m.socket_group, m.user, &access);
                !why.empty()) {
                postwarden::log::error("[milter] socket_group/user: " + why);
                return 1;
            }
        }
        postwarden::milter::Services services(config);
        // The socket is opened and root given up here, on the main thread: no_new_privs is kept
        // per thread, and this is the thread that lives longest. libmilter creates the socket
        // (and removes a stale one) under the umask and file system ids that give it its owner,
        // group and mode at birth: nothing is changed by path afterwards.
        std::string why;
        if (socket_path.empty())
            why = postwarden::milter::open_milter(services) ? "" : "cannot open the milter socket";
        else
            why = postwarden::create_unix_socket(socket_path, access, [&]() -> std::string {
                return postwarden::milter::open_milter(services) ? ""
                                                                 : "cannot open the milter socket";
            });
        if (why.empty()) {
            if (why = postwarden::drop_privileges(m.user); !why.empty())
                postwarden::log::error("[milter] user: " + why);
        } else {
            postwarden::log::error("[milter] listen: " + why);
        }
        if (!why.empty()) {
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
