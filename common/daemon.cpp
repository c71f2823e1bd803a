// daemon.cpp — the shared start of the daemons; see daemon.hpp.
#include "common/daemon.hpp"

#include <grp.h>
#include <pwd.h>
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
    check(a.redis.address.to_string() != b.redis.address.to_string(), "[redis] address");
    check(a.redis.password != b.redis.password, "[redis] password");
    check(a.redis.prefix != b.redis.prefix, "[redis] prefix");
    check(a.redis.timeout_ms != b.redis.timeout_ms, "[redis] timeout_ms");
    check(a.dns.nameservers != b.dns.nameservers, "[dns] nameservers");
    check(a.dns.timeout_ms != b.dns.timeout_ms, "[dns] timeout_ms");
    check(a.dns.cache_entries != b.dns.cache_entries, "[dns] cache_entries");
    if (daemon == "policyd") {
        check(spelled(a.policyd.listen) != spelled(b.policyd.listen), "[policyd] listen");
        check(a.policyd.user != b.policyd.user, "[policyd] user");
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

std::string set_socket_access(const std::string& path, unsigned mode, const std::string& group,
                              const std::string& owner) {
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
    std::string error;
    if (!owner.empty() && geteuid() == 0) {
        Account a;
        if (!find_user(owner, &a, &error)) return error;
        uid = a.uid;
        gid = a.gid;  // "empty socket_group: the daemon's group", the one it is about to have
    }
    if (!group.empty() && !find_group(group, &gid, &error)) return error;
    // Only a socket is changed: never follow a link planted where the socket should be.
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) return os_error(path);
    if (!S_ISSOCK(st.st_mode)) return path + ": not a socket";
    if ((uid != static_cast<uid_t>(-1) || gid != static_cast<gid_t>(-1)) &&
        lchown(path.c_str(), uid, gid) != 0)
        return os_error("chown " + path);
    if (chmod(path.c_str(), mode) != 0) return os_error("chmod " + path);
    return "";
}

}  // namespace postwarden
