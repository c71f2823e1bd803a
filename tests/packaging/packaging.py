#!/usr/bin/env python3
"""packaging.py — what postwarden ships beside its programs, and how the daemons give up
privileges. One ctest test per check:

    packaging.py --source DIR --build DIR CHECK     run one check
    packaging.py --source DIR --build DIR --list    list them

Checks:
  man-lint        mandoc -Tlint -Wwarning passes every page in man/
  man-keys        postwarden.conf(5) lists every key of conf/postwarden.conf under its section,
                  with its default, and no other
  install         `cmake --install` into a temporary prefix, and with DESTDIR and prefix /usr:
                  every file lands where it should, the units name the installed paths, an
                  existing configuration is kept
  systemd         `systemd-analyze verify` on the installed units (their ExecStart= programs
                  and man pages exist under the temporary prefix), and their exposure
                  (`systemd-analyze security --offline`) stays at most 2.0
  compose         `docker-compose config -q` on contrib/docker/docker-compose.yml; its
                  postwarden.conf is valid; the postfix/main.cf it uses has the README's lines
  dockerfile      the Dockerfile builds with the project's scripts only, runs as a non-root
                  user; contrib/install.sh (its build step) installs into a DESTDIR, and the
                  `deps.sh --runtime` list holds the package of every library the installed
                  programs link
  privilege-drop  as root, postwarden-policyd with [policyd] user = nobody: every thread ends
                  with nobody's uid and gid and no other group, no_new_privs, it answers, and
                  SIGHUP still reloads
  bad-account     a user or group that does not exist stops either daemon at start with
                  FILE:LINE: [section] key
  milter-socket   a unix: milter socket gets [milter] socket_mode, and as root socket_group
                  and the user it switches to
  redis-password  the [redis] password is in no log line, with a wrong password (at debug level)
                  and a right one

Every daemon and redis-server runs on 127.0.0.1 (free ports) in a temporary directory and is
stopped by its PID. Exit status: 0 passed, 1 failed, 77 skipped ("SKIPPED: why": a check that
needs root, or a tool that is missing).
"""

import argparse
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

import yaml

SKIP = 77
PASSWORD = "Pw-7f3a-never-in-logs"
PROGRAMS = {"sbin": ["postwarden-policyd", "postwarden-milter"], "bin": ["postwarden"]}
MAN_PAGES = {"man8": ["postwarden-policyd.8", "postwarden-milter.8", "postwarden.8"],
             "man5": ["postwarden.conf.5"]}
UNITS = ["postwarden-policyd.service", "postwarden-milter.service"]
# Always in debian:12-slim (apt needs them), so deps.sh --runtime need not name them.
BASE_PACKAGES = {"libc6", "libstdc++6", "libgcc-s1"}


class Skip(Exception):
    pass


class Failure(AssertionError):
    pass


def check(condition, what):
    if not condition:
        raise Failure(what)


def log(text):
    print(text, flush=True)


def run(argv, **kwargs):
    """Runs argv, returns (exit code, stdout + stderr)."""
    kwargs.setdefault("timeout", 300)
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       **kwargs)
    return p.returncode, p.stdout


def need_tool(name):
    if not shutil.which(name):
        raise Skip("%s is not installed (contrib/deps.sh installs it)" % name)


def need_root(why):
    if os.geteuid() != 0:
        raise Skip("not root: %s" % why)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


# ---------------------------------------------------------------------------------------------
# Processes

class Process:
    """A child with stdout and stderr in a file; stop() ends it by its PID."""

    def __init__(self, argv, log_path, env=None):
        self.log_path = log_path
        self.log_file = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env)

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc.poll() is None

    def output(self):
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()

    def wait_output(self, text, timeout=10):
        return wait_until(lambda: text in self.output() or not self.running(), timeout) and \
            text in self.output()

    def stop(self, sig=signal.SIGTERM, grace=10):
        if self.running():
            os.kill(self.pid, sig)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()
        return self.proc.returncode


class Redis:
    def __init__(self, workdir, password):
        self.port = free_port()
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", workdir, "--requirepass", password]
        self.process = Process(argv, os.path.join(workdir, "redis.log"))
        if not wait_until(self.answers, 10):
            self.process.stop()
            raise Failure("redis-server did not start: " + self.process.output())

    def answers(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def stop(self):
        self.process.stop()


def daemon_env(switches_user):
    env = dict(os.environ)
    if switches_user:
        # A process that changed its uid is not dumpable, and LeakSanitizer's tracer cannot
        # attach to it at exit (sanitizer builds): that would be a report about the test, not a
        # leak. Daemons that keep their user are checked for leaks as everywhere else.
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
    return env


def start_daemon(build, program, workdir, config_text, name):
    path = os.path.join(workdir, name + ".conf")
    with open(path, "w") as f:
        f.write(config_text)
    os.chmod(path, 0o644)
    binary = os.path.join(build, program.split("-")[1], program)
    switches_user = re.search(r"^user = \S", config_text, re.M) is not None
    return Process([binary, "-f", "-c", path], os.path.join(workdir, name + ".log"),
                   env=daemon_env(switches_user))


def policy_request(port):
    request = ("request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=192.0.2.1\n"
               "client_name=mx.example.org\nhelo_name=mx.example.org\nsender=a@example.org\n"
               "recipient=b@example.net\nqueue_id=TESTQ1\n\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request.encode())
        reply = b""
        while not reply.endswith(b"\n\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.decode()


def proc_status(pid, task=None):
    path = "/proc/%d/status" % pid if task is None else "/proc/%d/task/%s/status" % (pid, task)
    fields = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return fields


def tasks(pid):
    return sorted(os.listdir("/proc/%d/task" % pid))


def assert_runs_as(pid, account, what):
    """Every thread of pid has account's uid and gid (real, effective, saved, fs) and no other
    group; the main thread has no_new_privs (Linux keeps it per thread: threads started before
    the switch, like policyd's SPF pool, do not get it, and need not: nothing executes)."""
    ids = pwd.getpwnam(account)
    threads = tasks(pid)
    for task in threads:
        status = proc_status(pid, task)
        check(status["Uid"] == [str(ids.pw_uid)] * 4,
              "%s thread %s: Uid %s, want %d" % (what, task, status["Uid"], ids.pw_uid))
        check(status["Gid"] == [str(ids.pw_gid)] * 4,
              "%s thread %s: Gid %s, want %d" % (what, task, status["Gid"], ids.pw_gid))
        groups = set(status.get("Groups", []))
        check(groups <= {str(g) for g in os.getgrouplist(account, ids.pw_gid)},
              "%s thread %s: groups %s are not %s's" % (what, task, groups, account))
        check("0" not in groups, "%s thread %s kept group root" % (what, task))
    check(proc_status(pid).get("NoNewPrivs") == ["1"], "%s: NoNewPrivs not set" % what)
    log("%s: %d threads, all uid/gid %d/%d, groups %s, NoNewPrivs" %
        (what, len(threads), ids.pw_uid, ids.pw_gid, proc_status(pid).get("Groups")))


# ---------------------------------------------------------------------------------------------
# Files of the source tree

def conf_keys(source):
    """(section, key, default) of every key in conf/postwarden.conf, in order."""
    keys, section = [], None
    with open(os.path.join(source, "conf", "postwarden.conf")) as f:
        for line in f:
            m = re.match(r"\[([a-z_]+)\]\s*$", line)
            if m:
                section = m.group(1)
                continue
            m = re.match(r"([a-z_0-9]+)\s*=(.*)$", line)
            if m:
                value = re.split(r"\s[#;]", " " + m.group(2))[0].strip()
                keys.append((section, m.group(1), value))
    return keys


def man_keys(page_path):
    """(section, key, default) of every key entry (.It Cm KEY Pq default: ...) in the page."""
    keys, section = [], None
    with open(page_path) as f:
        for line in f:
            m = re.match(r'\.Ss \[([a-z_]+)\]', line)
            if m:
                section = m.group(1)
                continue
            m = re.match(r'\.It Cm ([a-z_0-9]+) Pq default: (?:Ql "(.*)"|empty)\s*$', line)
            if m:
                keys.append((section, m.group(1), m.group(2) or ""))
    return keys


def deps_packages(source, mode=None):
    """The package list of `contrib/deps.sh` (mode None), `--build` or `--runtime`."""
    with open(os.path.join(source, "contrib", "deps.sh")) as f:
        text = f.read()
    pattern = r'^packages="([^"$]*)' if mode is None else r'%s\)\s*shift\s*packages="([^"$]*)' % mode
    m = re.search(pattern, text, re.M)
    check(m, "contrib/deps.sh has no %s package list" % (mode or "main"))
    return set(m.group(1).split())


def readme_wiring_lines(source):
    """The non-blank lines of the main.cf block in README's "Wiring into Postfix and Dovecot"."""
    with open(os.path.join(source, "README.md")) as f:
        text = f.read()
    section = text.split("## Wiring into Postfix and Dovecot", 1)[1]
    block = section.split("```", 2)[1]
    return [line.strip() for line in block.splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------
# Installing

def cmake_install(build, prefix, destdir=None):
    env = dict(os.environ)
    env.pop("DESTDIR", None)
    if destdir:
        env["DESTDIR"] = destdir
    code, out = run(["cmake", "--install", build, "--prefix", prefix], env=env)
    check(code == 0, "cmake --install failed:\n" + out)
    return out


def expected_files(root, prefix, sysconfdir):
    files = []
    for folder, names in PROGRAMS.items():
        files += [os.path.join(prefix, folder, n) for n in names]
    for folder, names in MAN_PAGES.items():
        files += [os.path.join(prefix, "share", "man", folder, n) for n in names]
    files += [os.path.join(prefix, "lib", "systemd", "system", u) for u in UNITS]
    files.append(os.path.join(prefix, "lib", "sysusers.d", "postwarden.conf"))
    files.append(os.path.join(prefix, "lib", "tmpfiles.d", "postwarden.conf"))
    files.append(os.path.join(sysconfdir, "postwarden", "postwarden.conf"))
    return [root + f for f in files]


def check_installed(root, prefix, sysconfdir):
    for path in expected_files(root, prefix, sysconfdir):
        check(os.path.isfile(path), "not installed: " + path)
    for folder, names in PROGRAMS.items():
        for n in names:
            check(os.access(os.path.join(root + prefix, folder, n), os.X_OK), n + " not executable")
    for unit in UNITS:
        text = open(os.path.join(root + prefix, "lib", "systemd", "system", unit)).read()
        program = unit.replace(".service", "")
        want = "ExecStart=%s/sbin/%s -c %s/postwarden/postwarden.conf" % (
            prefix.rstrip("/"), program, sysconfdir)
        check(want in text, "%s: no line %r" % (unit, want))
        check(not re.search(r"@[A-Z_]+@", text), unit + ": an @VARIABLE@ was not substituted")
    # The configuration may hold [redis] password: not readable by every local user.
    config = os.path.join(root + sysconfdir, "postwarden", "postwarden.conf")
    mode = stat.S_IMODE(os.stat(config).st_mode)
    check(mode == 0o640, "%s is mode %o, want 0640" % (config, mode))
    tmpfiles = open(os.path.join(root + prefix, "lib", "tmpfiles.d", "postwarden.conf")).read()
    want = "z %s/postwarden/postwarden.conf 0640 root postwarden -" % sysconfdir
    check(want in tmpfiles, "tmpfiles.d/postwarden.conf: no line %r" % want)


def check_install(args, tmp):
    need_tool("cmake")
    prefix = os.path.join(tmp, "prefix")
    cmake_install(args.build, prefix)
    check_installed("", prefix, prefix + "/etc")
    log("installed into %s: %d files" % (prefix, len(expected_files("", prefix, prefix + "/etc"))))

    # A package's layout: DESTDIR, prefix /usr, configuration in /etc.
    root = os.path.join(tmp, "root")
    cmake_install(args.build, "/usr", destdir=root)
    check_installed(root, "/usr", "/etc")
    check(not os.path.exists(os.path.join(root, "usr", "etc")), "configuration under /usr/etc")
    log("installed with DESTDIR=%s --prefix /usr: configuration in /etc/postwarden" % root)

    # The operator's configuration survives a reinstall.
    config = os.path.join(root, "etc", "postwarden", "postwarden.conf")
    with open(config, "a") as f:
        f.write("# edited by the operator\n")
    cmake_install(args.build, "/usr", destdir=root)
    check("# edited by the operator" in open(config).read(), "reinstall overwrote " + config)
    log("a reinstall keeps an edited postwarden.conf")


# ---------------------------------------------------------------------------------------------
# Checks

def check_man_lint(args, tmp):
    need_tool("mandoc")
    pages = sorted(os.listdir(os.path.join(args.source, "man")))
    want = sorted(n for names in MAN_PAGES.values() for n in names)
    check(pages == want, "man/ holds %s, want %s" % (pages, want))
    for page in pages:
        code, out = run(["mandoc", "-Tlint", "-Wwarning", os.path.join(args.source, "man", page)])
        check(code == 0 and not out.strip(), "mandoc -Tlint -Wwarning %s:\n%s" % (page, out))
        log("mandoc -Tlint -Wwarning %s: clean" % page)


def check_man_keys(args, tmp):
    shipped = conf_keys(args.source)
    documented = man_keys(os.path.join(args.source, "man", "postwarden.conf.5"))
    check(len(shipped) > 40, "conf/postwarden.conf: only %d keys found" % len(shipped))
    missing = [k for k in shipped if k not in documented]
    extra = [k for k in documented if k not in shipped]
    check(not missing, "postwarden.conf.5 lacks (or has another default for): %s" %
          ", ".join("[%s] %s = %r" % k for k in missing))
    check(not extra, "postwarden.conf.5 documents keys conf/postwarden.conf does not have: %s" %
          ", ".join("[%s] %s = %r" % k for k in extra))
    log("postwarden.conf.5 documents all %d keys with their defaults" % len(shipped))


def check_systemd(args, tmp):
    need_tool("systemd-analyze")
    need_tool("man")
    prefix = os.path.join(tmp, "prefix")
    cmake_install(args.build, prefix)
    units = [os.path.join(prefix, "lib", "systemd", "system", u) for u in UNITS]
    # Documentation=man:... is checked too: the pages are found under the prefix.
    env = dict(os.environ, MANPATH=os.path.join(prefix, "share", "man"))
    code, out = run(["systemd-analyze", "verify"] + units, env=env)
    check(code == 0 and not out.strip(), "systemd-analyze verify:\n" + out)
    log("systemd-analyze verify: clean for %s" % ", ".join(UNITS))
    for unit in units:
        text = open(unit).read()
        for directive in ("User=postwarden", "NoNewPrivileges=yes", "ProtectSystem=strict",
                          "CapabilityBoundingSet=\n", "RuntimeDirectory=postwarden"):
            check(directive in text, "%s lacks %s" % (unit, directive.strip()))
        code, out = run(["systemd-analyze", "security", "--offline=yes", "--threshold=20", unit])
        level = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
        check(code == 0 and level, "%s: exposure above 2.0 or unknown:\n%s" % (unit, out[-2000:]))
        log("%s: exposure %s (systemd-analyze security)" % (os.path.basename(unit), level.group(1)))
    # The units' User= comes from sysusers.d: parse it against an empty root, writing nothing.
    sysusers = os.path.join(prefix, "lib", "sysusers.d", "postwarden.conf")
    os.makedirs(os.path.join(tmp, "sysroot", "etc"))
    code, out = run(["systemd-sysusers", "--root", os.path.join(tmp, "sysroot"), "--dry-run",
                     sysusers])
    check(code == 0 and "Creating user 'postwarden'" in out, "systemd-sysusers:\n" + out)
    log("systemd-sysusers --dry-run: would create user postwarden")


def check_compose(args, tmp):
    need_tool("docker-compose")
    docker = os.path.join(args.source, "contrib", "docker")
    code, out = run(["docker-compose", "-f", os.path.join(docker, "docker-compose.yml"),
                     "config", "-q"], cwd=docker)
    check(code == 0, "docker-compose config -q:\n" + out)
    log("docker-compose config -q: valid")
    code, out = run(["docker-compose", "-f", os.path.join(docker, "docker-compose.yml"),
                     "config"], cwd=docker)
    check(code == 0, out)
    compose = yaml.safe_load(out)
    services = compose["services"]
    check({"postfix", "redis", "policyd", "milter"} <= set(services), "services: %s" % services)
    for name in ("policyd", "milter"):
        s = services[name]
        check(s.get("network_mode") == "service:postfix", name + " is no sidecar of postfix")
        check(s.get("read_only") is True and s.get("cap_drop") == ["ALL"] and
              "no-new-privileges:true" in s.get("security_opt", []),
              name + ": read-only root, no capabilities, no-new-privileges")
        check(s["command"][0] == "postwarden-" + name, name + ": command " + str(s["command"]))
    policyd = os.path.join(args.build, "policyd", "postwarden-policyd")
    code, out = run([policyd, "-c", os.path.join(docker, "postwarden.conf"), "--check-config"])
    check(code == 0, "contrib/docker/postwarden.conf: " + out)
    # No password is shipped: Redis and both daemons read the one make-secret.sh generates.
    redis_conf = open(os.path.join(docker, "redis.conf")).read()
    check(not re.search(r"^requirepass", redis_conf, re.M), "redis.conf ships a password")
    check(not re.search(r"^password", open(os.path.join(docker, "postwarden.conf")).read(),
                        re.M), "postwarden.conf ships a password")
    check(compose.get("secrets", {}).get("redis_password", {}).get("file", "").endswith(
        "secrets/redis_password"), "no secret redis_password from secrets/redis_password")
    for name in ("redis", "policyd", "milter"):
        s = services[name]
        check(any((x if isinstance(x, str) else x.get("source")) == "redis_password"
                  for x in s.get("secrets", [])), name + " does not get the secret")
        check("/run/secrets/redis_password" in " ".join(s.get("entrypoint", [])),
              name + ": the entry point does not read the secret")
    copy = os.path.join(tmp, "docker")
    os.makedirs(copy)
    shutil.copy(os.path.join(docker, "make-secret.sh"), copy)
    code, out = run(["sh", os.path.join(copy, "make-secret.sh")])
    check(code == 0, "make-secret.sh:\n" + out)
    secret = os.path.join(copy, "secrets", "redis_password")
    password = open(secret).read().strip()
    check(len(password) >= 32 and password.isalnum(), "a weak password: %r" % password)
    check(stat.S_IMODE(os.stat(os.path.dirname(secret)).st_mode) == 0o700,
          "secrets/ is not mode 0700")
    run(["sh", os.path.join(copy, "make-secret.sh")])
    check(open(secret).read().strip() == password, "make-secret.sh replaced the password")
    check("secrets/" in open(os.path.join(docker, ".gitignore")).read().split(),
          "contrib/docker/.gitignore does not keep secrets/ out of git")
    # The Postfix container uses the lines README tells operators to use, in that order.
    main_cf = [line.strip() for line in
               open(os.path.join(docker, "postfix", "main.cf")).read().splitlines()]
    position = 0
    for line in readme_wiring_lines(args.source):
        # The sidecars share Postfix's network namespace: loopback TCP stands for the socket.
        line = line.replace("unix:postwarden/policyd.sock", "inet:127.0.0.1:10040")
        check(line in main_cf[position:], "postfix/main.cf lacks README's line %r" % line)
        position = main_cf.index(line, position) + 1
    log("postfix/main.cf has README's main.cf lines in order; postwarden.conf is valid")


def check_dockerfile(args, tmp):
    need_tool("readelf")
    need_tool("dpkg")
    text = open(os.path.join(args.source, "contrib", "docker", "Dockerfile")).read()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    check(len(stages) == 2, "the Dockerfile has a build stage and a final stage")
    check(all(s.startswith("debian:12") for s in stages), "both stages start from Debian 12")
    runs = [re.findall(r"^RUN (.*)$", s, re.M) for s in stages]
    check(runs[0] == ["contrib/deps.sh --build",
                      "POSTWARDEN_BUILD_DIR=/tmp/build contrib/install.sh /staging"],
          "the build stage runs only contrib/deps.sh --build and contrib/install.sh: %s" % runs[0])
    check(len(runs[1]) == 1 and "deps.sh --runtime" in runs[1][0], "the final stage: %s" % runs[1])
    check(re.search(r"^COPY --from=build --chown=root:postwarden /staging/etc/postwarden/ ",
                    stages[1], re.M), "the image's configuration is not group postwarden")
    users = re.findall(r"^USER (\S+)", stages[1], re.M)
    check(users and users[-1] not in ("root", "0"), "the image runs as a non-root user")

    # The build step itself, against this build tree, into a DESTDIR.
    staging = os.path.join(tmp, "staging")
    env = dict(os.environ, POSTWARDEN_BUILD_DIR=os.path.abspath(args.build))
    env.pop("DESTDIR", None)
    code, out = run([os.path.join(args.source, "contrib", "install.sh"), staging], env=env,
                    timeout=1150)
    check(code == 0, "contrib/install.sh:\n" + out[-4000:])
    check_installed(staging, "/usr", "/etc")
    for line in re.findall(r"^COPY --from=build (?:--\S+ )*(\S+)", stages[1], re.M):
        check(os.path.exists(staging + line[len("/staging"):]), "the image copies " + line +
              ", which contrib/install.sh does not install")
    log("contrib/install.sh installs what the image copies")

    # The build stage installs deps.sh --build: every library's -dev package of the full list.
    full, build = deps_packages(args.source), deps_packages(args.source, "--build")
    lacking = sorted(p for p in full if p.endswith("-dev") and p not in build)
    check(not lacking, "deps.sh --build lacks %s (in its full list)" % ", ".join(lacking))
    check(build <= full, "deps.sh --build has packages its full list lacks: %s" % (build - full))

    # Every library the programs link comes with a package of deps.sh --runtime.
    runtime = deps_packages(args.source, "--runtime")
    needed = {}
    for folder, names in PROGRAMS.items():
        for n in names:
            binary = os.path.join(staging, "usr", folder, n)
            code, out = run(["readelf", "-d", binary])
            check(code == 0, out)
            for lib in re.findall(r"\(NEEDED\)\s+Shared library: \[(.+)\]", out):
                needed.setdefault(lib, set()).add(n)
    missing = []
    for lib, users in sorted(needed.items()):
        if re.match(r"lib(a|ub|l|t)san\.", lib):
            continue  # a sanitizer build's runtime (contrib/test.sh's second pass), not shipped
        package = package_of(lib)
        if package not in BASE_PACKAGES and package not in runtime:
            missing.append("%s (%s, needed by %s)" % (package, lib, ", ".join(sorted(users))))
    check(not missing, "deps.sh --runtime lacks: " + "; ".join(missing))
    log("deps.sh --runtime covers the %d libraries the programs link: %s" %
        (len(needed), ", ".join(sorted(needed))))


def package_of(soname):
    code, out = run(["ldconfig", "-p"])
    paths = re.findall(r"^\s+%s \(libc6,x86-64[^)]*\) => (\S+)" % re.escape(soname), out, re.M)
    paths = paths or re.findall(r"^\s+%s \([^)]*\) => (\S+)" % re.escape(soname), out, re.M)
    check(paths, "no library %s on this machine" % soname)
    for path in (paths[0], os.path.realpath(paths[0])):
        for candidate in (path, re.sub(r"^/usr/lib/", "/lib/", path)):
            code, out = run(["dpkg", "-S", candidate])
            if code == 0:
                return out.split(":")[0]
    raise Failure("no package owns " + paths[0])


def policyd_config(redis, port, extra=""):
    return ("[redis]\naddress = 127.0.0.1:%d\npassword = %s\n[policyd]\nlisten = 127.0.0.1:%d\n"
            "%s" % (redis.port, PASSWORD, port, extra))


def check_privilege_drop(args, tmp):
    need_root("only root can switch to another user")
    need_tool("redis-server")
    os.chmod(tmp, 0o755)  # the configuration must stay readable for nobody (SIGHUP)
    redis = Redis(tmp, PASSWORD)
    port = free_port()
    daemon = start_daemon(args.build, "postwarden-policyd", tmp,
                          policyd_config(redis, port, "user = nobody\n"), "policyd")
    try:
        check(daemon.wait_output("started;"), "policyd did not start:\n" + daemon.output())
        assert_runs_as(daemon.pid, "nobody", "postwarden-policyd")
        check("running as user nobody" in daemon.output(), daemon.output())
        reply = policy_request(port)
        check(reply.startswith("action=DEFER_IF_PERMIT 4.7.1 Greylisted"), "reply: " + reply)
        log("as nobody it answers: " + reply.strip())
        os.kill(daemon.pid, signal.SIGHUP)
        check(daemon.wait_output("configuration reloaded"), "no reload as nobody:\n" +
              daemon.output())
        check(policy_request(port).startswith("action=DEFER_IF_PERMIT"), "no answer after HUP")
        log("SIGHUP still reloads the configuration")
        code = daemon.stop()
        check(code == 0, "policyd exited %s after SIGTERM:\n%s" % (code, daemon.output()))
        started_unprivileged(args, tmp, redis)
    finally:
        daemon.stop()
        redis.stop()


def started_unprivileged(args, tmp, redis):
    """Started as nobody (as systemd's User= does): user = nobody is fine, another is refused."""
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    binary = os.path.join(args.build, "policyd", "postwarden-policyd")
    if not shutil.which("setpriv") or run(as_nobody + ["test", "-x", binary])[0] != 0:
        log("not checked: starting as nobody (no setpriv, or nobody cannot reach %s)" % binary)
        return
    for user, works in (("nobody", True), ("daemon", False)):
        port = free_port()
        path = os.path.join(tmp, "unprivileged.conf")
        with open(path, "w") as f:
            f.write(policyd_config(redis, port, "user = %s\n" % user))
        os.chmod(path, 0o644)
        daemon = Process(as_nobody + [binary, "-f", "-c", path],
                         os.path.join(tmp, "unprivileged-%s.log" % user), env=daemon_env(False))
        try:
            if works:
                check(daemon.wait_output("started;"), "as nobody, user = nobody:\n" +
                      daemon.output())
                check(policy_request(port).startswith("action="), "no answer as nobody")
                log("started as nobody with user = nobody: runs and answers")
            else:
                daemon.proc.wait(10)
                want = "[policyd] user: cannot switch to user 'daemon': started as uid %d" % (
                    pwd.getpwnam("nobody").pw_uid)
                check(daemon.proc.returncode == 1 and want in daemon.output(),
                      "as nobody, user = daemon: exit %s\n%s" % (daemon.proc.returncode,
                                                                 daemon.output()))
                log("started as nobody with user = daemon: refused (%s)" % want)
        finally:
            daemon.stop()


def check_bad_account(args, tmp):
    cases = [("postwarden-policyd", "[policyd]\nuser = no-such-user-pw\n", 2,
              "[policyd] user: no such user 'no-such-user-pw'"),
             ("postwarden-milter", "[milter]\nenforce_from = yes\nuser = no-such-user-pw\n", 3,
              "[milter] user: no such user 'no-such-user-pw'"),
             ("postwarden-milter", "[milter]\nlisten = unix:%s/m.sock\nsocket_group = "
              "no-such-group-pw\n" % tmp, 3,
              "[milter] socket_group: no such group 'no-such-group-pw'"),
             ("postwarden-milter", "[milter]\nsocket_mode = 0999\n", 2,
              "[milter] socket_mode: expected an octal mode")]
    for program, config, line, message in cases:
        path = os.path.join(tmp, "bad.conf")
        with open(path, "w") as f:
            f.write(config)
        binary = os.path.join(args.build, program.split("-")[1], program)
        for extra in (["--check-config"], ["-f"]):
            code, out = run([binary, "-c", path] + extra, timeout=20)
            want = "%s: %s:%d: %s" % (program, path, line, message)
            check(code == 1 and want in out, "%s %s: exit %s, output %r; want exit 1 and %r" %
                  (program, " ".join(extra), code, out, want))
            check(not os.path.exists(os.path.join(tmp, "m.sock")), "a socket was created")
        log("%s refuses: %s" % (program, want))


def milter_config(redis, sock, extra):
    return ("[redis]\naddress = 127.0.0.1:%d\npassword = %s\n[milter]\nlisten = unix:%s\n%s" %
            (redis.port, PASSWORD, sock, extra))


def check_milter_socket(args, tmp):
    need_tool("redis-server")
    redis = Redis(tmp, PASSWORD)
    try:
        # socket_mode alone (any user may run this).
        sock = os.path.join(tmp, "a", "milter.sock")
        os.makedirs(os.path.dirname(sock), 0o755)
        os.chmod(os.path.dirname(sock), 0o755)
        expect_socket(args, tmp, redis, sock, "socket_mode = 0600\n", 0o600, os.geteuid(),
                      os.getegid(), None)
        if os.geteuid() != 0:
            raise Skip("not root: socket_mode checked; socket_group and user need root")
        # As root: mode, group, and the user the milter becomes owns the socket; as that user it
        # still reloads (SIGUSR1: the file must stay readable) and stops with status 0.
        os.chmod(tmp, 0o755)
        mail = grp.getgrnam("mail").gr_gid
        nobody = pwd.getpwnam("nobody").pw_uid
        sock = os.path.join(tmp, "b", "milter.sock")
        os.makedirs(os.path.dirname(sock), 0o755)
        os.chmod(os.path.dirname(sock), 0o755)
        # owned by the user it becomes, as the README sets it up: it removes its socket at stop
        os.chown(os.path.dirname(sock), nobody, -1)
        expect_socket(args, tmp, redis, sock,
                      "socket_mode = 0660\nsocket_group = mail\nuser = nobody\n", 0o660, nobody,
                      mail, "nobody")
        # The defaults: 0660, the group of the user it becomes.
        sock = os.path.join(tmp, "c", "milter.sock")
        os.makedirs(os.path.dirname(sock), 0o755)
        os.chmod(os.path.dirname(sock), 0o755)
        os.chown(os.path.dirname(sock), nobody, -1)
        expect_socket(args, tmp, redis, sock, "user = nobody\n", 0o660, nobody,
                      pwd.getpwnam("nobody").pw_gid, "nobody")
    finally:
        redis.stop()


def expect_socket(args, tmp, redis, sock, extra, mode, uid, gid, user):
    daemon = start_daemon(args.build, "postwarden-milter", tmp, milter_config(redis, sock, extra),
                          "milter-" + os.path.basename(os.path.dirname(sock)))
    try:
        check(daemon.wait_output("listening on") and wait_until(lambda: os.path.exists(sock), 5),
              "the milter did not start:\n" + daemon.output())
        time.sleep(0.5)  # past the chmod and the switch
        st = os.lstat(sock)
        check(stat.S_ISSOCK(st.st_mode), sock + " is not a socket")
        got = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
        check(got == (mode, uid, gid), "%s: mode %o uid %d gid %d; want mode %o uid %d gid %d" %
              (sock, got[0], got[1], got[2], mode, uid, gid))
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(sock)  # it listens
        if user:
            assert_runs_as(daemon.pid, user, "postwarden-milter")
            os.kill(daemon.pid, signal.SIGUSR1)
            check(daemon.wait_output("configuration reloaded"),
                  "no reload as %s:\n%s" % (user, daemon.output()))
            code = daemon.stop()
            check(code == 0, "the milter exited %s after SIGTERM:\n%s" % (code, daemon.output()))
            check(not os.path.exists(sock), sock + " left behind after the stop")
        log("milter socket %s: mode %o, owner %d, group %d (%s)" %
            (sock, mode, uid, gid, extra.strip().replace("\n", ", ")))
    finally:
        daemon.stop()


def check_redis_password(args, tmp):
    need_tool("redis-server")
    redis = Redis(tmp, PASSWORD)
    try:
        wrong = PASSWORD[::-1]
        port = free_port()
        daemons = [
            start_daemon(args.build, "postwarden-policyd", tmp,
                         "[log]\nlevel = debug\n" +
                         policyd_config(redis, port).replace(PASSWORD, wrong), "policyd-wrong"),
            start_daemon(args.build, "postwarden-milter", tmp,
                         "[log]\nlevel = debug\n" +
                         milter_config(redis, os.path.join(tmp, "m.sock"), "").replace(
                             PASSWORD, wrong), "milter-wrong"),
        ]
        for d in daemons:
            check(d.wait_output("authentication failed"), "no AUTH failure logged:\n" +
                  d.output())
        right_port = free_port()
        right = start_daemon(args.build, "postwarden-policyd", tmp,
                             "[log]\nlevel = debug\n" + policyd_config(redis, right_port),
                             "policyd-right")
        daemons.append(right)
        check(right.wait_output("started;"), right.output())
        policy_request(right_port)
        # Its file is mode 0644 (start_daemon): one warning that the password is readable.
        check(right.output().count("every local user may read it") == 1,
              "no warning that the password's file is world-readable:\n" + right.output())
        # Mode 0640: no warning.
        private_conf = os.path.join(tmp, "policyd-private.conf")
        with open(private_conf, "w") as f:
            f.write(policyd_config(redis, free_port()))
        os.chmod(private_conf, 0o640)
        private = Process([os.path.join(args.build, "policyd", "postwarden-policyd"), "-f", "-c",
                           private_conf], os.path.join(tmp, "policyd-private.log"),
                          env=daemon_env(False))
        daemons.append(private)
        check(private.wait_output("started;"), private.output())
        check("may read it" not in private.output(), "warned about a 0640 file:\n" +
              private.output())
        time.sleep(0.3)
    finally:
        for d in daemons:
            d.stop()
        redis.stop()
    for d in daemons:
        text = d.output()
        for secret in (PASSWORD, wrong):
            check(secret not in text, "%s logged the Redis password:\n%s" % (d.log_path, text))
    log("no log of %d daemons (wrong and right password, level debug) holds the password" %
        len(daemons))
    log("e.g. " + next(line for line in daemons[0].output().splitlines()
                       if "authentication failed" in line))


CHECKS = {
    "man-lint": check_man_lint,
    "man-keys": check_man_keys,
    "install": check_install,
    "systemd": check_systemd,
    "compose": check_compose,
    "dockerfile": check_dockerfile,
    "privilege-drop": check_privilege_drop,
    "bad-account": check_bad_account,
    "milter-socket": check_milter_socket,
    "redis-password": check_redis_password,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", required=True)
    parser.add_argument("--build", required=True)
    parser.add_argument("--list", action="store_true")
    parser.add_argument("check", nargs="?")
    args = parser.parse_args()
    if args.list:
        print("\n".join(CHECKS))
        return 0
    if args.check not in CHECKS:
        parser.error("unknown check %r; --list shows them" % args.check)
    args.source = os.path.abspath(args.source)
    args.build = os.path.abspath(args.build)
    tmp = tempfile.mkdtemp(prefix="pw-packaging-")
    try:
        CHECKS[args.check](args, tmp)
    except Skip as e:
        print("SKIPPED: %s" % e, flush=True)
        return SKIP
    except Failure as e:
        print("FAILED: %s" % e, flush=True)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("PASSED: %s" % args.check)
    return 0


if __name__ == "__main__":
    sys.exit(main())
