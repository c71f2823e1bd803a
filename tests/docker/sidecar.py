#!/usr/bin/env python3
"""sidecar.py — contrib/docker as operators run it, tested with podman on this machine.

    tests/docker/sidecar.py [--keep-tmp]

No container registry is reachable here, so the base image comes from debootstrap: a Debian 12
minbase tree, imported under the names the Dockerfiles start from (debian:12, debian:12-slim),
so the Dockerfiles are built as they are, without a pull. The registry's redis:7-bookworm is
replaced by tests/docker/redis/Dockerfile (Debian's redis-server, the same entry point
contract), built under that name. Then the services of contrib/docker/docker-compose.yml are
created with podman commands read from that file (podman-compose 1.0.3, Debian 12's, cannot
run `network_mode: service:postfix`): their images, entry points, commands, volumes, secrets,
read-only roots, tmpfs, capabilities and security options, in dependency order; a compose key
this script does not know fails the test, so the file cannot grow past what is tested.

What differs from `docker-compose up`, for the test only:
- the published ports bind 127.0.0.1 on free ports (not every address of the host);
- the Redis password is made by a copy of make-secret.sh in the temporary directory;
- postwarden.conf is contrib/docker/postwarden.conf with three sections added: [greylist]
  delay = 2, and [dns] nameservers = a DNS server (tests/fixtures/dnsserver.py) that this
  script runs in the Postfix container's network namespace, on 127.0.0.1 port 53, with the
  test zone;
- the network has no podman DNS server (aardvark-dns forwards names it does not know to the
  machine's resolvers): the containers' only nameserver is 127.0.0.1 (--dns), which is that
  server for Postfix and the daemons and nothing for Redis, and the zone has the service names
  (redis) and the client's address and name, so no lookup leaves the machine. Postfix logging
  the client by the zone's name, and every resolv.conf naming 127.0.0.1 alone, show it.

The message: SMTP to Postfix's published port from 127.0.0.1; the first RCPT must get 450 from
policyd (greylisting); after the delay the same triplet must be accepted (250), and the mail
Postfix delivers (/var/mail/root, via postmaster) must carry the milter's Authentication-Results
with contrib/docker/postwarden.conf's authserv_id and spf=neutral (the test zone's record), and
policyd's X-Greylist header.

podman runs with its own storage, run root, network configuration and containers.conf in a
temporary directory (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF): runtime runc and default
ulimits no higher than this process's own hard limits, which this kind of machine needs.
Everything is removed at the end, on failure and on SIGTERM too: containers, volumes, the
network, images, mounts, the DNS server (by PID), the directory, the iptables chains netavark
adds, and what podman, netavark and runc keep in /var/lib/containers, /run/containers, /run/netns
and /run/runc whatever the configuration says, when this run made them;
net.ipv4.ip_forward, which netavark turns on, is put back.

Exit status 0: passed; 1: failed; 77: skipped (the first line of output says why): not root
(debootstrap and rootful podman need it) or podman cannot start a container here.
"""

import argparse
import fnmatch
import json
import os
import random
import re
import resource
import shlex
import shutil
import signal
import smtplib
import socket
import string
import subprocess
import sys
import tempfile
import time

import yaml

SOURCE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DOCKER = os.path.join(SOURCE, "contrib", "docker")
COMPOSE = os.path.join(DOCKER, "docker-compose.yml")
MIRROR = "http://deb.debian.org/debian"
GREYLIST_DELAY = 2
SENDER_DOMAIN = "sender.example"
CLIENT_NAME = "client." + SENDER_DOMAIN

# The compose keys this script turns into podman options (each handled in service_args).
SERVICE_KEYS = {"build", "image", "network_mode", "depends_on", "volumes", "secrets",
                "entrypoint", "command", "read_only", "tmpfs", "cap_drop", "security_opt",
                "restart", "ports", "profiles"}
TOP_KEYS = {"version", "services", "volumes", "secrets"}

# The APT sources of Debian's official images: main of bookworm, its updates and security.
DEBIAN_SOURCES = """Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


class Failed(Exception):
    pass


class Skipped(Exception):
    pass


def log(text):
    print("sidecar: " + text, flush=True)


def check(condition, text):
    if not condition:
        raise Failed(text)


class Run:
    """One test run: the temporary directory, podman's configuration, what was made."""

    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="pw-sidecar-")
        self.project = "pwsidecar%d" % os.getpid()
        self.network = self.project + "_default"
        self.containers = []          # names, in start order
        self.volumes = []
        self.network_made = False
        self.dns_server = None
        self.phases = []
        self.ip_forward = open("/proc/sys/net/ipv4/ip_forward").read().strip()
        self.chains = firewall_chains()
        # What podman, netavark and runc make outside the configured directories whatever the
        # configuration says (a blob cache, IP allocations, state): removed at the end when this
        # run made it.
        self.made_dirs = [d for d in ("/var/lib/containers", "/run/containers", "/run/netns",
                                      "/run/runc") if not os.path.exists(d)]
        if "/var/lib/containers" not in self.made_dirs and \
                not os.path.exists("/var/lib/containers/cache"):
            self.made_dirs.append("/var/lib/containers/cache")
        self.env = dict(os.environ,
                        CONTAINERS_CONF=os.path.join(self.tmp, "containers.conf"),
                        CONTAINERS_STORAGE_CONF=os.path.join(self.tmp, "storage.conf"),
                        CONTAINERS_REGISTRIES_CONF=os.path.join(self.tmp, "registries.conf"))
        self.write_podman_config()

    # -- podman ------------------------------------------------------------------------------

    def write_podman_config(self):
        t = self.tmp
        # podman's default ulimits are higher than runc may set here (nproc above 32768 and
        # nofile above the hard limit fail with EPERM): lower ones, within this process's.
        limits = []
        for name, which, cap in (("nofile", resource.RLIMIT_NOFILE, 65536),
                                 ("nproc", resource.RLIMIT_NPROC, 4096)):
            hard = resource.getrlimit(which)[1]
            value = cap if hard == resource.RLIM_INFINITY else min(cap, hard)
            limits.append('"%s=%d:%d"' % (name, value, value))
        with open(os.path.join(t, "containers.conf"), "w") as f:
            f.write("[containers]\ndefault_ulimits = [%s]\n" % ", ".join(limits))
            f.write('[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n'
                    'events_logger = "file"\ntmp_dir = "%s/libpod"\n'
                    '[network]\nnetwork_backend = "netavark"\nnetwork_config_dir = "%s/networks"\n'
                    % (t, t))
        with open(os.path.join(t, "storage.conf"), "w") as f:
            f.write('[storage]\ndriver = "overlay"\ngraphroot = "%s/root"\nrunroot = "%s/run"\n'
                    % (t, t))
        with open(os.path.join(t, "registries.conf"), "w") as f:
            f.write("unqualified-search-registries = []\n")

    def podman(self, *args, check_ok=True, timeout=900):
        """podman ARGS with this run's configuration: its output, or with check_ok=False the
        CompletedProcess whatever the exit status."""
        proc = subprocess.run(["podman"] + list(args), env=self.env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=timeout)
        if check_ok and proc.returncode != 0:
            raise Failed("podman %s: exit %d\n%s" % (" ".join(args[:3]), proc.returncode,
                                                     proc.stdout[-6000:]))
        return proc.stdout if check_ok else proc

    def phase(self, name, started):
        seconds = time.monotonic() - started
        self.phases.append((name, seconds))
        log("%s: %.0f s" % (name, seconds))

    # -- the base image ----------------------------------------------------------------------

    def probe(self):
        """Can podman start a container here? Tried before the minutes of debootstrap, on an image
        of this machine's /bin/sh and the libraries it loads; if not, the test cannot run here."""
        rootfs = os.path.join(self.tmp, "probe")
        files = ["/bin/sh"] + re.findall(r"(/\S+) \(0x", subprocess.run(
            ["ldd", "/bin/sh"], stdout=subprocess.PIPE, text=True).stdout)
        for path in files:
            target = rootfs + os.path.realpath(path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy(os.path.realpath(path), target)
            if os.path.realpath(path) != path:
                os.makedirs(os.path.dirname(rootfs + path), exist_ok=True)
                if not os.path.lexists(rootfs + path):
                    os.symlink(os.path.realpath(path), rootfs + path)
        image = "localhost/%s-probe" % self.project
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        proc = subprocess.run(["podman", "import", "-q", "-", image], env=self.env,
                              stdin=tar.stdout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=120)
        tar.stdout.close()
        tar.wait()
        shutil.rmtree(rootfs)
        if proc.returncode == 0:
            proc = self.podman("run", "--rm", "--pull=never", "--network=none", image,
                               "/bin/sh", "-c", "exit 0", check_ok=False)
            self.podman("rmi", "-f", image, check_ok=False)
        if proc.returncode != 0:
            lines = proc.stdout.strip().splitlines() or ["exit %d" % proc.returncode]
            raise Skipped("podman cannot start a container on this machine: " + lines[-1])

    def base_image(self):
        started = time.monotonic()
        rootfs = os.path.join(self.tmp, "rootfs")
        proc = subprocess.run(["debootstrap", "--variant=minbase", "bookworm", rootfs, MIRROR], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=900)
        check(proc.returncode == 0, "debootstrap:\n" + proc.stdout[-4000:])
        apt = os.path.join(rootfs, "etc", "apt")
        if os.path.exists(os.path.join(apt, "sources.list")):
            os.remove(os.path.join(apt, "sources.list"))
        with open(os.path.join(apt, "sources.list.d", "debian.sources"), "w") as f:
            f.write(DEBIAN_SOURCES)
        for leftover in ("var/lib/apt/lists", "var/cache/apt/archives"):
            for name in os.listdir(os.path.join(rootfs, leftover)):
                path = os.path.join(rootfs, leftover, name)
                if os.path.isfile(path) and name != "lock":
                    os.remove(path)
        self.phase("debootstrap", started)

        started = time.monotonic()
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        proc = subprocess.run(["podman", "import", "-q", "-", "docker.io/library/debian:12"],
                              env=self.env, stdin=tar.stdout, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=300)
        tar.stdout.close()
        check(tar.wait() == 0 and proc.returncode == 0, "podman import:\n" + proc.stdout)
        shutil.rmtree(rootfs)
        # Full names: a short name given to `podman tag` would land in localhost/.
        self.podman("tag", "docker.io/library/debian:12", "docker.io/library/debian:12-slim")
        self.phase("base image import", started)

    # -- the compose file --------------------------------------------------------------------

    def load_compose(self):
        with open(COMPOSE) as f:
            compose = yaml.safe_load(f)
        unknown = set(k for k in compose if not k.startswith("x-")) - TOP_KEYS
        check(not unknown, "docker-compose.yml: top-level keys this test does not handle: %s"
              % sorted(unknown))
        for name, service in compose["services"].items():
            unknown = set(service) - SERVICE_KEYS
            check(not unknown, "docker-compose.yml: service %s: keys this test does not handle:"
                  " %s" % (name, sorted(unknown)))
        self.compose = interpolate(compose)
        # As `docker-compose up` without --profile: a service with profiles (the ha profile's
        # replica and Sentinels) is not part of the default stack.
        self.services = {name: service for name, service in self.compose["services"].items()
                         if not service.get("profiles")}

    def image_of(self, name):
        service = self.services[name]
        return service.get("image") or "localhost/%s_%s" % (self.project, name)

    def build_images(self):
        # make-secret.sh writes the Redis password inside the build context (the repository):
        # .dockerignore must keep it out of the build stage's COPY . . and so of image layers.
        with open(os.path.join(SOURCE, ".dockerignore")) as f:
            patterns = [line.strip().rstrip("/") for line in f
                        if line.strip() and not line.startswith("#")]
        secret = "contrib/docker/secrets/redis_password"
        check(any(fnmatch.fnmatch(secret, p) or secret.startswith(p + "/") for p in patterns),
              ".dockerignore does not keep %s out of the build context" % secret)
        # The registry's images the compose file names without a build: only Redis has a stand-in.
        built = set()
        for name, service in self.services.items():
            image = self.image_of(name)
            if "build" not in service:
                check(name == "redis", "service %s: image %s is not built here and no stand-in "
                      "exists" % (name, image))
                started = time.monotonic()
                self.podman("build", "--pull=never", "-q", "-t", image,
                            os.path.join(SOURCE, "tests", "docker", "redis"))
                self.phase("image %s (stand-in)" % image, started)
                continue
            build = service["build"]
            if isinstance(build, str):
                build = {"context": build}
            unknown = set(build) - {"context", "dockerfile"}
            check(not unknown, "service %s: build keys this test does not handle: %s"
                  % (name, sorted(unknown)))
            context = os.path.normpath(os.path.join(DOCKER, build["context"]))
            dockerfile = os.path.join(context, build.get("dockerfile", "Dockerfile"))
            key = (context, dockerfile, image)
            if key in built:
                continue
            built.add(key)
            started = time.monotonic()
            self.podman("build", "--pull=never", "-q", "-f", dockerfile, "-t", image, context,
                        timeout=1500)
            self.phase("image %s" % image, started)

    def start_order(self):
        order, seen = [], set()

        def visit(name, path):
            check(name not in path, "docker-compose.yml: a dependency cycle at " + name)
            if name in seen:
                return
            service = self.services[name]
            deps = list(service.get("depends_on", []))
            mode = service.get("network_mode", "")
            if mode.startswith("service:"):
                deps.append(mode[len("service:"):])
            for dep in deps:
                check(dep in self.services, "service %s depends on unknown %s" % (name, dep))
                visit(dep, path | {name})
            seen.add(name)
            order.append(name)

        for name in self.services:
            visit(name, set())
        return order

    def container(self, name):
        return "%s_%s_1" % (self.project, name)

    def bind_source(self, path):
        """A bind mount's or secret's source; the test's own files where this test differs."""
        relative = os.path.normpath(path)
        overrides = {"postwarden.conf": self.test_conf,
                     os.path.join("secrets", "redis_password"): self.secret}
        if relative in overrides:
            return overrides[relative]
        return os.path.normpath(os.path.join(DOCKER, path))

    def service_args(self, name):
        s = self.services[name]
        args = ["create", "--pull=never", "--name", self.container(name)]
        mode = s.get("network_mode")
        if mode:
            check(mode.startswith("service:"), "service %s: network_mode %s" % (name, mode))
            args += ["--network", "container:" + self.container(mode[len("service:"):])]
        else:
            # The network has no DNS server of podman's (aardvark-dns would forward every name
            # it does not know, like Postfix's reverse lookup of the client, to the machine's
            # resolvers): the service names are in the test zone, and the containers ask the
            # test's DNS server (which runs in Postfix's namespace; elsewhere nothing answers).
            args += ["--network", self.network, "--dns", "127.0.0.1", "--dns-search", "."]
        for volume in s.get("volumes", []):
            check(isinstance(volume, str), "service %s: long volume syntax" % name)
            parts = volume.split(":")
            check(len(parts) in (2, 3), "service %s: volume %s" % (name, volume))
            source, target = parts[0], parts[1]
            options = (":" + parts[2]) if len(parts) == 3 else ""
            if source.startswith(".") or source.startswith("/"):
                args += ["-v", "%s:%s%s" % (self.bind_source(source), target, options)]
            else:
                check(source in (self.compose.get("volumes") or {}),
                      "service %s: undeclared volume %s" % (name, source))
                args += ["-v", "%s_%s:%s%s" % (self.project, source, target, options)]
        for secret in s.get("secrets", []):
            check(isinstance(secret, str), "service %s: long secret syntax" % name)
            declared = self.compose["secrets"][secret]
            check(set(declared) == {"file"}, "secret %s: %s" % (secret, declared))
            args += ["-v", "%s:/run/secrets/%s:ro" % (self.bind_source(declared["file"]), secret)]
        if s.get("read_only"):
            # podman's --read-only also mounts tmpfs on /run, /tmp and /var/tmp, Docker's does not.
            args += ["--read-only", "--read-only-tmpfs=false"]
        for tmpfs in s.get("tmpfs", []):
            args += ["--tmpfs", tmpfs]
        for cap in s.get("cap_drop", []):
            args += ["--cap-drop", cap]
        for option in s.get("security_opt", []):
            args += ["--security-opt", option]
        if "restart" in s:
            args += ["--restart", s["restart"]]
        for port in s.get("ports", []):
            container_port = str(port).split(":")[-1]
            host_port = free_port()
            self.published[(name, container_port)] = host_port
            args += ["-p", "127.0.0.1:%d:%s" % (host_port, container_port)]
        if "entrypoint" in s:
            entrypoint = s["entrypoint"]
            args += ["--entrypoint", json.dumps(entrypoint if isinstance(entrypoint, list)
                                                else ["/bin/sh", "-c", entrypoint])]
        args.append(self.image_of(name))
        command = s.get("command", [])
        args += command if isinstance(command, list) else ["/bin/sh", "-c", command]
        return args

    # -- the stack ---------------------------------------------------------------------------

    def prepare_files(self):
        # The Redis password: make-secret.sh, run from a copy, as an operator runs it.
        copy = os.path.join(self.tmp, "compose")
        os.makedirs(copy)
        shutil.copy(os.path.join(DOCKER, "make-secret.sh"), copy)
        proc = subprocess.run(["sh", os.path.join(copy, "make-secret.sh")], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        check(proc.returncode == 0, "make-secret.sh:\n" + proc.stdout)
        self.secret = os.path.join(copy, "secrets", "redis_password")
        self.test_conf = os.path.join(copy, "postwarden.conf")
        self.published = {}

    def write_test_conf(self, dns_port):
        with open(os.path.join(DOCKER, "postwarden.conf")) as f:
            shipped = f.read()
        with open(self.test_conf, "w") as f:
            f.write(shipped)
            f.write("\n# Added by tests/docker/sidecar.py:\n[greylist]\ndelay = %d\n"
                    "[dns]\nnameservers = 127.0.0.1:%d\n" % (GREYLIST_DELAY, dns_port))
        os.chmod(self.test_conf, 0o644)

    def up(self):
        started = time.monotonic()
        self.podman("network", "create", "--disable-dns", self.network)
        self.network_made = True
        for volume in (self.compose.get("volumes") or {}):
            self.podman("volume", "create", "%s_%s" % (self.project, volume))
            self.volumes.append("%s_%s" % (self.project, volume))
        for name in self.start_order():
            if name in ("policyd", "milter") or self.services[name].get("network_mode"):
                if self.dns_server is None:
                    self.start_dns()
            self.podman(*self.service_args(name))
            self.containers.append(self.container(name))
            self.podman("start", self.container(name))
        self.wait_ready()
        self.phase("compose up", started)

    def pid_of(self, name):
        return int(self.podman("inspect", "-f", "{{.State.Pid}}", self.container(name)).strip())

    def gateway(self):
        """The network's gateway: the client address Postfix sees for the published port."""
        return json.loads(self.podman("network", "inspect", self.network))[0]["subnets"][0][
            "gateway"]

    def start_dns(self):
        """The test zone's DNS server on 127.0.0.1 port 53 in Postfix's network namespace: the
        daemons' [dns] nameservers, and the resolver of Postfix and the daemons (--dns)."""
        zone = os.path.join(self.tmp, "zone")
        with open(zone, "w") as f:
            # Neutral, not pass: SPF pass would hand greylisting to the milter at end of data
            # (trust_authenticated); neutral is greylisted by policyd at RCPT, and the result in
            # Authentication-Results shows the daemons asked this server.
            f.write('%s TXT "v=spf1 ?all"\n' % SENDER_DOMAIN)
            # The services started so far by name (the daemons' [redis] address is redis:6379),
            # as a compose network's DNS has them.
            for name in self.containers:
                networks = json.loads(self.podman("inspect", name))[0]["NetworkSettings"][
                    "Networks"]
                if self.network in networks:
                    service = name[len(self.project) + 1:-len("_1")]
                    f.write("%s A %s\n" % (service, networks[self.network]["IPAddress"]))
            # Postfix's reverse lookup of the client, forward-confirmed: the name in its log
            # shows that Postfix asked this server.
            address = self.gateway()
            f.write("%s PTR %s\n%s A %s\n"
                    % (".".join(reversed(address.split("."))) + ".in-addr.arpa", CLIENT_NAME,
                       CLIENT_NAME, address))
        port_file = os.path.join(self.tmp, "dns.port")
        self.dns_server = subprocess.Popen(
            ["nsenter", "-t", str(self.pid_of("postfix")), "-n", sys.executable,
             os.path.join(SOURCE, "tests", "fixtures", "dnsserver.py"), "--zone", zone,
             "--address", "127.0.0.1", "--port", "53", "--port-file", port_file],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not os.path.exists(port_file):
            check(self.dns_server.poll() is None, "the DNS server stopped")
            check(time.monotonic() < deadline, "the DNS server did not start")
            time.sleep(0.1)
        self.write_test_conf(int(open(port_file).read()))

    def wait_ready(self):
        """Redis ready, policyd and the milter listening in Postfix's namespace, Postfix's banner."""
        deadline = time.monotonic() + 60
        while "Ready to accept connections" not in self.podman("logs", self.container("redis")):
            self.running_or_fail()
            check(time.monotonic() < deadline, "Redis did not start:\n" +
                  self.podman("logs", self.container("redis")))
            time.sleep(0.2)
        probe = ("import socket,sys\nfor p in (10040, 8891):\n"
                 "    socket.create_connection(('127.0.0.1', p), 2).close()\n")
        while subprocess.run(["nsenter", "-t", str(self.pid_of("postfix")), "-n", sys.executable,
                              "-c", probe], stderr=subprocess.DEVNULL).returncode != 0:
            self.running_or_fail()
            check(time.monotonic() < deadline, "policyd or the milter did not start listening:\n"
                  + self.podman("logs", self.container("policyd")) +
                  self.podman("logs", self.container("milter")))
            time.sleep(0.2)
        port = self.published[("postfix", "25")]
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), 2) as s:
                    s.settimeout(5)
                    if s.recv(512).startswith(b"220"):
                        break
            except OSError:
                pass
            self.running_or_fail()
            check(time.monotonic() < deadline, "Postfix does not answer on port %d" % port)
            time.sleep(0.2)

    def running_or_fail(self):
        for name in self.containers:
            info = json.loads(self.podman("inspect", name))[0]
            check(info["State"]["Running"] and not info.get("RestartCount"),
                  "container %s is not running (or restarted):\n%s"
                  % (name, self.podman("logs", name)))

    # -- the message -------------------------------------------------------------------------

    def send(self, port, message_id):
        client = smtplib.SMTP("127.0.0.1", port, local_hostname=CLIENT_NAME,
                              timeout=30)
        try:
            client.ehlo()
            code, text = client.mail("alice@" + SENDER_DOMAIN)
            check(code == 250, "MAIL FROM: %d %s" % (code, text))
            code, text = client.rcpt("postmaster@mail.example.com")
            if code != 250:
                return code, text.decode()
            body = ("From: Alice <alice@%s>\r\nTo: postmaster@mail.example.com\r\n"
                    "Subject: sidecar test\r\nMessage-ID: <%s@%s>\r\n"
                    "Date: %s\r\n\r\nThrough Postfix, policyd and the milter in containers.\r\n"
                    % (SENDER_DOMAIN, message_id, SENDER_DOMAIN,
                       time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())))
            code, text = client.data(body.encode())
            return code, text.decode()
        finally:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                pass

    def message(self):
        started = time.monotonic()
        port = self.published[("postfix", "25")]
        message_id = "".join(random.choice(string.ascii_lowercase) for _ in range(16))
        code, text = self.send(port, message_id)
        check(code == 450 and "Greylisted" in text,
              "first attempt: expected 450 Greylisted from policyd, got %d %s\n%s"
              % (code, text, self.logs()))
        log("first attempt: %d %s" % (code, text))
        time.sleep(GREYLIST_DELAY + 1)
        code, text = self.send(port, message_id)
        check(code == 250, "retry: expected 250, got %d %s\n%s" % (code, text, self.logs()))
        log("retry: %d %s" % (code, text))
        authserv_id = re.search(r"^authserv_id\s*=\s*(\S+)",
                                open(os.path.join(DOCKER, "postwarden.conf")).read(),
                                re.M).group(1)
        deadline = time.monotonic() + 30
        while True:
            proc = self.podman("exec", self.container("postfix"), "cat", "/var/mail/root",
                               check_ok=False)
            mailbox = proc.stdout if proc.returncode == 0 else ""
            if message_id in mailbox:
                break
            check(time.monotonic() < deadline, "the message was not delivered to /var/mail/root"
                  "\n" + self.logs())
            time.sleep(0.3)
        headers = mailbox[mailbox.rfind("\nFrom ") + 1:].split("\n\n", 1)[0]
        headers = re.sub(r"\n[ \t]+", " ", headers)
        results = [h for h in headers.split("\n") if h.startswith("Authentication-Results:")]
        check(results, "no Authentication-Results header:\n" + headers)
        check(re.match(r"Authentication-Results: %s;" % re.escape(authserv_id), results[0]) and
              re.search(r"\bspf=neutral\b", results[0]),
              "expected Authentication-Results: %s; ... spf=neutral, got:\n%s"
              % (authserv_id, "\n".join(results)))
        check(re.search(r"^X-Greylist: delayed \d+ seconds by postwarden", headers, re.M),
              "no X-Greylist header from policyd:\n" + headers)
        log(results[0])
        self.no_dns_leaves()
        self.running_or_fail()
        self.phase("message", started)

    def no_dns_leaves(self):
        """Every name was looked up on the test's DNS server: Postfix logs the client's name
        from the test zone, and no container has a resolver other than 127.0.0.1 (the test's
        server in Postfix's namespace, nothing in Redis's) or a podman DNS server to ask."""
        connect = "connect from %s[%s]" % (CLIENT_NAME, self.gateway())
        postfix_log = self.podman("logs", self.container("postfix"))
        check(connect in postfix_log, "Postfix did not log %r (the client's name from the test"
              " zone):\n%s" % (connect, postfix_log[-3000:]))
        log("Postfix: " + connect)
        for name in self.containers:
            for path in ("/etc/resolv.conf", "/var/spool/postfix/etc/resolv.conf"):
                proc = self.podman("exec", name, "cat", path, check_ok=False)
                if proc.returncode != 0 and path != "/etc/resolv.conf":
                    continue  # no chroot copy (Postfix's is made only by Debian's init script)
                servers = re.findall(r"^\s*nameserver\s+(\S+)", proc.stdout, re.M)
                check(proc.returncode == 0 and servers == ["127.0.0.1"],
                      "%s %s: expected only nameserver 127.0.0.1:\n%s"
                      % (name, path, proc.stdout))
        network = json.loads(self.podman("network", "inspect", self.network))[0]
        check(not network.get("dns_enabled"), "podman's DNS server is on:\n%s" % network)

    def logs(self):
        out = []
        for name in self.containers:
            proc = self.podman("logs", "--tail", "40", name, check_ok=False)
            out.append("--- %s\n%s" % (name, proc.stdout))
        return "\n".join(out)

    # -- teardown ----------------------------------------------------------------------------

    def down(self):
        started = time.monotonic()
        problems = []
        if self.dns_server is not None and self.dns_server.poll() is None:
            self.dns_server.terminate()
            try:
                self.dns_server.wait(10)
            except subprocess.TimeoutExpired:
                self.dns_server.kill()
                self.dns_server.wait()
        steps = [("rm", "-f", "-t", "2", name) for name in reversed(self.containers)]
        steps += [("volume", "rm", "-f", volume) for volume in self.volumes]
        steps += [("network", "rm", "-f", self.network)] if self.network_made else []
        steps += [("rmi", "-a", "-f"), ("ps", "-a", "-q")]
        for step in steps:
            try:
                proc = self.podman(*step, check_ok=False, timeout=300)
            except subprocess.TimeoutExpired:
                problems.append("podman %s: timed out" % " ".join(step))
                continue
            if proc.returncode != 0 or (step[0] == "ps" and proc.stdout.strip()):
                problems.append("podman %s: %s" % (" ".join(step), proc.stdout.strip()))
        # Anything still mounted under the temporary directory (overlay layers, the storage).
        for _ in range(3):
            mounts = [point for point in mount_points() if point.startswith(self.tmp + "/")]
            if not mounts:
                break
            for point in sorted(mounts, key=len, reverse=True):
                subprocess.run(["umount", "-l", point], stderr=subprocess.DEVNULL)
        remove_new_chains(self.chains)
        for made in self.made_dirs:
            if made in ("/run/netns", "/run/runc"):
                try:  # empty once every container and network namespace is gone
                    if not os.listdir(made) and made in mount_points():
                        subprocess.run(["umount", made])  # podman bind-mounts /run/netns
                    os.rmdir(made)
                except OSError as e:
                    problems.append("%s: %s" % (made, e))
            else:
                shutil.rmtree(made, ignore_errors=True)
        if open("/proc/sys/net/ipv4/ip_forward").read().strip() != self.ip_forward:
            with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
                f.write(self.ip_forward + "\n")
        if not self.args.keep_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            if os.path.exists(self.tmp):
                problems.append("could not remove " + self.tmp)
        self.phase("teardown", started)
        return problems


def interpolate(value):
    """Compose's variable substitution on every string: "$$" is a literal "$"; the file uses no
    variables, so any other "$" is one this test would have to substitute and fails it."""
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, str):
        check("$" not in value.replace("$$", ""),
              "docker-compose.yml: a variable this test does not substitute: " + value)
        return value.replace("$$", "$")
    return value


FIREWALLS = [(tool, table) for tool in ("iptables", "ip6tables") for table in ("filter", "nat")]


def firewall_chains():
    """The chains of each iptables table now: netavark adds its own and leaves them."""
    chains = {}
    for tool, table in FIREWALLS:
        proc = subprocess.run([tool + "-save", "-t", table], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
        chains[(tool, table)] = set(re.findall(r"^:(\S+)", proc.stdout, re.M))
    return chains


def remove_new_chains(before):
    """Removes the chains made since `before`, and the rules that jump to them."""
    for (tool, table), chains in firewall_chains().items():
        new = chains - before[(tool, table)]
        if not new:
            continue
        rules = subprocess.run([tool + "-save", "-t", table], stdout=subprocess.PIPE,
                               text=True).stdout
        for line in rules.splitlines():
            words = shlex.split(line) if line.startswith("-A ") else []
            if words and words[1] not in new and "-j" in words and \
                    words[words.index("-j") + 1] in new:
                subprocess.run([tool, "-t", table, "-D"] + words[1:])
        for chain in new:
            subprocess.run([tool, "-t", table, "-F", chain])
        for chain in new:
            subprocess.run([tool, "-t", table, "-X", chain])


def mount_points():
    return [line.split()[4] for line in open("/proc/self/mountinfo")]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep-tmp", action="store_true", help="leave the temporary directory")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("SKIPPED: tests/docker/sidecar.py needs root (debootstrap, rootful podman)")
        return 77
    for tool in ("podman", "debootstrap", "nsenter"):
        if not shutil.which(tool):
            print("sidecar: %s is missing (contrib/deps.sh installs it)" % tool)
            return 1

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    run = Run(args)
    status = 1
    total = time.monotonic()
    try:
        run.load_compose()
        run.probe()
        run.base_image()
        run.prepare_files()
        run.build_images()
        run.up()
        run.message()
        status = 0
    except Skipped as e:
        print("SKIPPED: tests/docker/sidecar.py: %s" % e)
        status = 77
    except Failed as e:
        print("sidecar: FAILED: %s" % e)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        problems = run.down()
        for problem in problems:
            print("sidecar: teardown: " + problem)
            status = status if status == 77 else 1
    log("phases: " + ", ".join("%s %.0f s" % p for p in run.phases) +
        "; total %.0f s" % (time.monotonic() - total))
    if status == 0:
        log("passed")
    return status


if __name__ == "__main__":
    sys.exit(main())
