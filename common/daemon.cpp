// daemon.cpp — the shared start of the daemons; see daemon.hpp.
#include "common/daemon.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <vector>

#include "common/log.hpp"

namespace postwarden {

namespace {

std::string os_error(const std::string& what) {
    return what + ": " + std::strerror(errno);
}

struct Account {
    uid_t uid = 0;
    gid_t gid = 0;
};

// getpwnam_r or getgrnam_r with a buffer grown as asked (a group's member list can be long).
template <typename Entry>
const Entry* lookup(const std::string& name, Entry* entry, std::vector<char>* buffer,
                    int (*get)(const char*, Entry*, char*, std::size_t, Entry**)) {
    Entry* found = nullptr;
    buffer->resize(4096);
    int rc;
    while ((rc = get(name.c_str(), entry, buffer->data(), buffer->size(), &found)) == ERANGE &&
           buffer->size() < (1u << 20))
        buffer->resize(buffer->size() * 2);
    return rc == 0 ? found : nullptr;
}

bool find_user(const std::string& name, Account* out, std::string* error) {
    passwd pw{};
    std::vector<char> buffer;
    if (!lookup(name, &pw, &buffer, getpwnam_r))
        return *error = "no such user '" + name + "'", false;
    *out = {pw.pw_uid, pw.pw_gid};
    return true;
}

bool find_group(const std::string& name, gid_t* out, std::string* error) {
    group gr{};
    std::vector<char> buffer;
    if (!lookup(name, &gr, &buffer, getgrnam_r))
        return *error = "no such group '" + name + "'", false;
    *out = gr.gr_gid;
    return true;
}

// True when every uid (real, effective, saved) and gid is the account's.
bool is_exactly(const Account& a) {
    uid_t ruid, euid, suid;
    gid_t rgid, egid, sgid;
    if (getresuid(&ruid, &euid, &suid) != 0 || getresgid(&rgid, &egid, &sgid) != 0) return false;
    return ruid == a.uid && euid == a.uid && suid == a.uid && rgid == a.gid && egid == a.gid &&
           sgid == a.gid;
}

// The Redis password is a secret: say so once when every local user may read the file holding it.
void warn_if_secret_readable(const std::string& path, const Config& config) {
    struct stat st;
    if (config.redis.password.empty() || stat(path.c_str(), &st) != 0 || !(st.st_mode & S_IROTH))
        return;
    log::warning(path + " holds [redis] password and every local user may read it: chmod o-r " +
                 path + " (e.g. mode 0640, group postwarden)");
}

}  // namespace

std::shared_ptr<const Config> start_daemon(std::string_view program, int argc, char** argv,
                                           std::string* config_path, int* exit_code) {
    const std::string name(program);
    const std::string usage = "usage: " + name +
                              " [-c FILE] [-f] [--check-config]\n"
                              "  -c FILE          configuration file (default "
                              "/etc/postwarden/postwarden.conf)\n"
                              "  -f               foreground: log to standard error instead of "
                              "syslog\n"
                              "  --check-config   validate the configuration and exit 0 (valid) "
                              "or 1\n";
    std::string path = "/etc/postwarden/postwarden.conf";
    bool foreground = false, check_only = false;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "-c" && i + 1 < argc) {
            path = argv[++i];
        } else if (arg == "-f") {
            foreground = true;
        } else if (arg == "--check-config") {
            check_only = true;
        } else if (arg == "-h" || arg == "--help") {
            std::cout << usage;
            return *exit_code = 0, nullptr;
        } else {
            std::cerr << name << ": unknown argument '" << arg << "'\n" << usage;
            return *exit_code = 1, nullptr;
        }
    }
    std::string error;
    auto config = load_config(path, &error);
    if (!config) {
        std::cerr << name << ": " << error << "\n";
        return *exit_code = 1, nullptr;
    }
    if (check_only) {
        std::cout << path << ": configuration is valid\n";
        return *exit_code = 0, nullptr;
    }
    log::open(name, foreground);
    log::set_min_level(config->log.level);
    warn_if_secret_readable(path, *config);
    *config_path = path;
    return config;
}

namespace {

std::string spelled(const std::optional<Endpoint>& e) {
    return e ? e->to_string() : "";
}

std::string spelled(const std::vector<Endpoint>& list) {
    std::string out;
    for (const auto& e : list)
        out += e.to_string() + ",";
    return out;
}

// The settings the running daemon only reads at start, that differ between a and b.
std::vector<std::string> restart_only_changes(const Config& a, const Config& b,
                                              std::string_view daemon) {
    std::vector<std::string> out;
    auto check = [&](bool differs, const char* name) {
        if (differs) out.emplace_back(name);
    };
    check(spelled(a.redis.seeds) != spelled(b.redis.seeds), "[redis] address");
    check(a.redis.password != b.redis.password, "[redis] password");
    check(a.redis.prefix != b.redis.prefix, "[redis] prefix");
    check(a.redis.timeout_ms != b.redis.timeout_ms, "[redis] timeout_ms");
    check(a.redis.cluster != b.redis.cluster, "[redis] cluster");
    check(spelled(a.redis.sentinels) != spelled(b.redis.sentinels), "[redis] sentinels");
    check(a.redis.master_name != b.redis.master_name, "[redis] master_name");
    check(a.redis.sentinel_password != b.redis.sentinel_password, "[redis] sentinel_password");
    check(a.dns.nameservers != b.dns.nameservers, "[dns] nameservers");
    check(a.dns.timeout_ms != b.dns.timeout_ms, "[dns] timeout_ms");
    check(a.dns.cache_entries != b.dns.cache_entries, "[dns] cache_entries");
    if (daemon == "policyd") {
        check(spelled(a.policyd.listen) != spelled(b.policyd.listen), "[policyd] listen");
        check(a.policyd.user != b.policyd.user, "[policyd] user");
        check(a.policyd.socket_mode != b.policyd.socket_mode, "[policyd] socket_mode");
        check(a.policyd.socket_group != b.policyd.socket_group, "[policyd] socket_group");
        check(spelled(a.metrics.policyd_listen) != spelled(b.metrics.policyd_listen),
              "[metrics] policyd_listen");
    } else {
        check(a.milter.listen != b.milter.listen, "[milter] listen");
        check(a.milter.user != b.milter.user, "[milter] user");
        check(a.milter.socket_mode != b.milter.socket_mode, "[milter] socket_mode");
        check(a.milter.socket_group != b.milter.socket_group, "[milter] socket_group");
        check(spelled(a.metrics.milter_listen) != spelled(b.metrics.milter_listen),
              "[metrics] milter_listen");
    }
    return out;
}

}  // namespace

std::shared_ptr<const Config> reload_config(const std::string& path, const Config& running,
                                            std::string_view daemon) {
    std::string error;
    auto fresh = load_config(path, &error);
    if (!fresh) {
        log::error("reload failed, keeping the running configuration: " + error);
        return nullptr;
    }
    auto changed = restart_only_changes(running, *fresh, daemon);
    if (!changed.empty()) {
        std::string names;
        for (const auto& name : changed)
            names += (names.empty() ? "" : ", ") + name;
        log::warning("changed, but taking effect only at the next restart: " + names);
    }
    log::set_min_level(fresh->log.level);
    log::notice("configuration reloaded from " + path);
    return fresh;
}

std::string drop_privileges(const std::string& user) {
    if (user.empty()) return "";
    Account to;
    std::string error;
    if (!find_user(user, &to, &error)) return error;
    if (geteuid() != 0) {
        // Started unprivileged (systemd's User=, Docker's USER): fine when it is the same user.
        if (is_exactly(to)) return "";
        return "cannot switch to user '" + user + "': started as uid " + std::to_string(geteuid()) +
               ", not as root or as that user";
    }
    // Groups first: once the uid is gone, so is the right to change them.
    if (initgroups(user.c_str(), to.gid) != 0) return os_error("initgroups " + user);
    if (setresgid(to.gid, to.gid, to.gid) != 0) return os_error("setresgid " + user);
    if (setresuid(to.uid, to.uid, to.uid) != 0) return os_error("setresuid " + user);
    if (!is_exactly(to)) return "switching to user '" + user + "' left another uid or gid";
    if (to.uid != 0) {
        // The saved set-user-ID is the usual way back: make sure there is none.
        if (setuid(0) == 0 || seteuid(0) == 0)
            return "could regain root after switching to user '" + user + "'";
        gid_t root_group = 0;
        if (setgroups(1, &root_group) == 0)
            return "could set groups after switching to user '" + user + "'";
    }
    // The daemons never execute anything; should that change, nothing set-user-ID can help.
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return os_error("prctl(NO_NEW_PRIVS)");
    log::info("running as user " + user + " (uid " + std::to_string(to.uid) + ", gid " +
              std::to_string(to.gid) + ")");
    return "";
}

std::string unix_socket_access(const std::string& path, unsigned mode, const std::string& group,
                               const std::string& owner, UnixSocketAccess* out) {
    out->mode = mode;
    out->uid = geteuid();
    out->gid = getegid();
    std::string error;
    if (!owner.empty()) {
        Account a;
        if (!find_user(owner, &a, &error)) return error;
        out->gid = a.gid;  // "empty socket_group: the daemon's group", the one it is about to have
        const auto slash = path.rfind('/');
        const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
        struct stat st;
        if (geteuid() == 0 && stat(dir.c_str(), &st) == 0 && st.st_uid == a.uid) out->uid = a.uid;
    }
    if (!group.empty() && !find_group(group, &out->gid, &error)) return error;
    return "";
}

std::string create_unix_socket(const std::string& path, const UnixSocketAccess& access,
                               const std::function<std::string()>& bind) {
    // setfsgid and setfsuid answer with the previous id; an id not taken leaves it unchanged,
    // which a second call with an invalid id (-1) reveals.
    const mode_t mask_before = umask(~access.mode & 0777);
    const int gid_before = setfsgid(access.gid);
    const bool gid_taken = setfsgid(static_cast<gid_t>(-1)) == static_cast<int>(access.gid);
    const int uid_before = setfsuid(access.uid);
    const bool uid_taken = setfsuid(static_cast<uid_t>(-1)) == static_cast<int>(access.uid);
    std::string why = uid_taken ? bind() : "cannot create it as uid " + std::to_string(access.uid);
    setfsuid(static_cast<uid_t>(uid_before));
    setfsgid(static_cast<gid_t>(gid_before));
    umask(mask_before);
    if (!why.empty() || gid_taken) return why;
    if (lchown(path.c_str(), static_cast<uid_t>(-1), access.gid) != 0)
        return os_error("chown " + path);
    return "";
}

bool peer_allowed(const UnixSocketAccess& access, uid_t uid, gid_t gid) {
    return uid == 0 || uid == geteuid() || uid == access.uid || gid == access.gid;
}

}  // namespace postwarden
