// socket_access_test.cpp — who may talk to policyd over its unix socket (SPEC §6): the socket is
// born with [policyd] socket_mode and socket_group, and a peer that is neither root, the socket's
// owner nor in its group is refused even when the mode lets it connect. The checks that switch
// users need root; without it they say so and check only what they can.
#include <catch2/catch.hpp>

#include <grp.h>
#include <pwd.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>
#include <vector>

#include "tests/fixtures/policyd_process.hpp"
#include "tests/fixtures/redis_server.hpp"

using namespace postwarden::test;
using namespace std::chrono_literals;

namespace {

std::string config_for(RedisServer& redis, const std::string& sock, const std::string& extra) {
    return "[redis]\naddress = " + redis.endpoint().to_string() +
           "\n[dns]\nnameservers = 127.0.0.1:" + std::to_string(free_port()) +
           "\ntimeout_ms = 200\n[greylist]\nenabled = no\n[policyd]\nlisten = 127.0.0.1:{port}, "
           "unix:" +
           sock + "\n" + extra;
}

// Asks once over the unix socket as uid/gid (a forked child switches to them). Returns 0 when
// it got a reply, 1 when the connection closed without one, 2 when it could not connect.
int ask_as(const std::string& sock, uid_t uid, gid_t gid) {
    pid_t pid = fork();
    if (pid == 0) {
        if (setgroups(0, nullptr) != 0 || setresgid(gid, gid, gid) != 0 ||
            setresuid(uid, uid, uid) != 0)
            _exit(3);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::strncpy(sa.sun_path, sock.c_str(), sizeof sa.sun_path - 1);
        if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) _exit(2);
        std::string req = format_request(inbound("192.0.2.1", "a@b.example", "victim@example.net"));
        if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size()))
            _exit(1);
        char buf[256];
        timeval tv{5, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        _exit(read(fd, buf, sizeof buf) > 0 ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The daemon answers on its TCP port before its unix socket exists (the listeners open in
// order): waits up to 5 s for the socket, and fills *st.
bool appears(const std::string& sock, struct stat* st) {
    for (int i = 0; i < 250; ++i) {
        if (lstat(sock.c_str(), st) == 0) return true;
        std::this_thread::sleep_for(20ms);
    }
    return false;
}

}  // namespace

TEST_CASE("unix socket: created with socket_mode, not wider", "[policyd][wire]") {
    RedisServer redis;
    TempDir dir;
    std::string sock = dir.path() + "/policyd.sock";
    PolicydProcess policyd(config_for(redis, sock, "socket_mode = 0600\n"));
    struct stat st {};
    REQUIRE(appears(sock, &st));
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 07777) == 0600);
    CHECK(st.st_uid == geteuid());
    PolicyClient client(sock);
    CHECK(client.ask(inbound("192.0.2.1", "a@b.example", "c@example.net")) == "DUNNO");
}

// Whoever may write the socket's directory could swap a link in for the socket between its bind
// and a chmod or chown by path, which root would then follow. The socket must be born with its
// mode, owner and group: the directory sees it created and never changed (no IN_ATTRIB).
TEST_CASE("unix socket: born with its permissions, never changed by path", "[policyd][wire]") {
    RedisServer redis;
    TempDir dir;
    std::string sock = dir.path() + "/policyd.sock";
    int watch = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    REQUIRE(watch >= 0);
    REQUIRE(inotify_add_watch(watch, dir.path().c_str(), IN_CREATE | IN_ATTRIB) >= 0);
    PolicydProcess policyd(config_for(redis, sock, "socket_mode = 0640\n"));
    PolicyClient client(sock);
    CHECK(client.ask(inbound("192.0.2.1", "a@b.example", "c@example.net")) == "DUNNO");
    std::vector<std::string> events;
    alignas(inotify_event) char buf[4096];
    for (ssize_t n; (n = read(watch, buf, sizeof buf)) > 0;)
        for (char* p = buf; p < buf + n;) {
            auto* e = reinterpret_cast<inotify_event*>(p);
            if (e->len > 0 && std::string(e->name) == "policyd.sock")
                events.push_back(e->mask & IN_CREATE ? "create" : "attrib");
            p += sizeof(inotify_event) + e->len;
        }
    close(watch);
    CHECK(events == std::vector<std::string>{"create"});
    struct stat st {};
    REQUIRE(appears(sock, &st));
    CHECK((st.st_mode & 07777) == 0640);
}

TEST_CASE("unix socket: another local user is refused, the socket's group is served",
          "[policyd][wire]") {
    if (geteuid() != 0) {
        WARN("not root: the other users' side needs root to switch users");
        return;
    }
    const passwd* nobody = getpwnam("nobody");
    const group* mail = getgrnam("mail");
    REQUIRE(nobody);
    REQUIRE(mail);
    const uid_t nobody_uid = nobody->pw_uid;
    const gid_t nobody_gid = nobody->pw_gid, mail_gid = mail->gr_gid;
    RedisServer redis;
    TempDir dir;
    chmod(dir.path().c_str(), 0755);
    std::string sock = dir.path() + "/policyd.sock";
    // A mode that lets everyone connect: the peer check must still hold.
    PolicydProcess policyd(config_for(redis, sock, "socket_mode = 0666\nsocket_group = mail\n"));
    struct stat st {};
    REQUIRE(appears(sock, &st));
    CHECK((st.st_mode & 07777) == 0666);
    CHECK(st.st_gid == mail_gid);
    CHECK(ask_as(sock, nobody_uid, nobody_gid) == 1);
    CHECK(wait_until(
        [&] {
            return policyd.log().find("refused a policy connection from uid " +
                                      std::to_string(nobody_uid)) != std::string::npos;
        },
        2s));
    CHECK(ask_as(sock, nobody_uid, mail_gid) == 0);  // in the socket's group: Postfix's case
    CHECK(ask_as(sock, 0, 0) == 0);
}

TEST_CASE("unix socket: with the default mode another user cannot even connect",
          "[policyd][wire]") {
    if (geteuid() != 0) {
        WARN("not root: the other users' side needs root to switch users");
        return;
    }
    const passwd* nobody = getpwnam("nobody");
    REQUIRE(nobody);
    const uid_t nobody_uid = nobody->pw_uid;
    const gid_t nobody_gid = nobody->pw_gid;
    RedisServer redis;
    TempDir dir;
    chmod(dir.path().c_str(), 0755);
    std::string sock = dir.path() + "/policyd.sock";
    PolicydProcess policyd(config_for(redis, sock, ""));
    struct stat st {};
    REQUIRE(appears(sock, &st));
    CHECK((st.st_mode & 07777) == 0660);
    CHECK(ask_as(sock, nobody_uid, nobody_gid) == 2);
}
