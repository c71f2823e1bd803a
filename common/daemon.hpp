// daemon.hpp — how both daemons start: the command line every postwarden program shares
// (SPEC §2: -c FILE, -f, --check-config), the configuration, and the log; and how they give up
// root once their sockets are bound (least privilege).
//
//   postwarden-policyd [-c FILE] [-f] [--check-config]
//   postwarden-milter  [-c FILE] [-f] [--check-config]
//
// The privilege model: a daemon started as root binds its listen sockets, gives a unix socket its
// configured owner, group and mode, and then switches for good to `[policyd] user` /
// `[milter] user`. Started as any other user (the systemd units, the Docker image) it needs
// nothing of root, and an empty `user` keeps it as started. Neither daemon writes files; the only
// things they create are their unix sockets, where the configuration puts them.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/config.hpp"

namespace postwarden {

// Parses the arguments and loads the configuration; with it, opens the log (syslog, or stderr
// with -f). Returns nullptr when the program is done: --help, a bad argument or configuration
// (said on stderr, FILE:LINE: [section] key: ...), or --check-config; *exit_code says how.
std::shared_ptr<const Config> start_daemon(std::string_view program, int argc, char** argv,
                                           std::string* config_path, int* exit_code);

// Reads the configuration again for a reload (policyd: SIGHUP; milter: SIGUSR1). When the file is
// now wrong, logs why and returns nullptr: the running configuration stays. Otherwise applies the
// new log level, logs a warning naming each changed setting that only a restart applies (any
// [redis] or [dns] key, and the daemon's own listen sockets, user and metrics endpoint — the
// parts built from them at start keep what they were built with) and returns the new snapshot.
// `daemon` is "policyd" or "milter".
std::shared_ptr<const Config> reload_config(const std::string& path, const Config& running,
                                            std::string_view daemon);

// Switches the whole process (every thread: glibc applies set*id to all of them) to `user`: its
// supplementary groups (initgroups), primary group, then uid, real, effective and saved; then a
// check that root cannot be had back, and no_new_privs (Linux keeps that flag per thread: it
// covers the caller and the threads it starts later; the systemd units set it for all). Call it
// after binding and before serving. Empty user: nothing changes. Already running as that user:
// nothing to do. Returns "" when done, otherwise why not; the caller must then stop rather than
// serve with more privileges than it was configured to keep.
std::string drop_privileges(const std::string& user);

// The owner, group and mode a unix listen socket is created with (SPEC §6: only Postfix may talk
// to the daemons), and so the peers it accepts.
struct UnixSocketAccess {
    uid_t uid = 0;
    gid_t gid = 0;
    unsigned mode = 0;
};

// Works out a unix socket's access from the configuration: `mode` (e.g. 0660); the group `group`,
// or when empty the primary group of `owner` (the user the daemon becomes), or its own; as owner
// `owner` when running as root and the socket's directory belongs to that user (so the daemon
// may still remove its socket at stop), else the user running it. Returns "" or why not (a user
// or group that does not exist).
std::string unix_socket_access(const std::string& path, unsigned mode, const std::string& group,
                               const std::string& owner, UnixSocketAccess* out);

// Runs `bind` (which creates the socket at `path`) with the umask and, on this thread, the file
// system uid and gid set so that the socket is born with `access`: its owner, group and mode are
// never changed by path afterwards, where someone who may write the directory (Postfix's
// private/, say) could have planted a link in the socket's place for root to follow. The umask is
// the process's: no other thread may create files meanwhile (the daemons create none). One
// exception: not running as root, a supplementary group cannot be a file system gid, and the
// group is then set by lchown, which follows no link and may only change a file of our own.
// Returns "" or why it failed (bind's own answer, or the chown's).
std::string create_unix_socket(const std::string& path, const UnixSocketAccess& access,
                               const std::function<std::string()>& bind);

// True when a peer with these credentials (SO_PEERCRED) may use a socket of `access`: root, the
// daemon's own user, the socket's owner, or a member of its group by primary group. The mode lets
// a member of the group in by a supplementary group too; the check is there for when the mode
// lets everyone in.
bool peer_allowed(const UnixSocketAccess& access, uid_t uid, gid_t gid);

}  // namespace postwarden
