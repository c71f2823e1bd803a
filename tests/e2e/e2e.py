#!/usr/bin/env python3
"""e2e.py — end-to-end scenarios: real mail through a stock Debian Postfix and Dovecot wired to
postwarden as conf/main.cf.example shows.

    e2e.py --source DIR --build DIR SCENARIO     run one scenario (ctest runs each as one test)
    e2e.py --source DIR --build DIR --list       list the scenarios
    e2e.py ... --keep SCENARIO                   keep the temporary directory (logs) afterwards

Every scenario starts its own world, on loopback only, and stops it by PID at the end:

- a DNS server (tests/fixtures/dnsserver.py, run in this process) on a random 127.x.y.z port 53,
  serving the test zones (A/MX of the domains, SPF, DKIM keys, DMARC records, a DNSBL);
- redis-server on a free 127.0.0.1 port, no persistence (scenario sentinel: a master, a
  replica and three `redis-server --sentinel`, the daemons configured with sentinels);
- postwarden-policyd and (when built) postwarden-milter from the build tree, configured with
  conf/postwarden.conf itself, only addresses, ports and delays changed;
- smtp-sink (from Postfix) on a free port: Postfix relays every accepted message there, and it
  stores each in a file for inspection;
- Dovecot (dovecot -F -c FILE) with a passwd-file, only as Postfix's SASL provider;
- Postfix (postfix -c DIR start) with its config, queue and data directories in the temporary
  directory; main.cf is conf/main.cf.example with only loopback ports substituted, after a block
  of instance settings (directories, inet_interfaces, relayhost, XCLIENT, SASL). It runs in a
  private mount namespace (unshare -m) whose /etc/resolv.conf points at the DNS server above, so
  every lookup Postfix makes (reject_unknown_*_domain, reject_rbl_client) is answered on
  loopback and the machine's own resolv.conf is never touched.

The test client speaks SMTP itself (smtplib) and presents other client addresses and HELO names
with XCLIENT (smtpd_authorized_xclient_hosts = 127.0.0.0/8).

Exit status: 0 passed, 1 failed, 77 skipped (ctest SKIP_RETURN_CODE) with a line "SKIPPED: why"
when something the scenario needs does not exist yet (the milter binary, quota support) or the
machine cannot run it (not root, Postfix or Dovecot not installed).
"""

import argparse
import email.utils
import glob
import grp
import imaplib
import importlib.util
import json
import os
import random
import re
import shutil
import signal
import smtplib
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import traceback

SKIP = 77
WATCHDOG = 110  # seconds; ctest's TIMEOUT for these tests is 150
AUTHSERV_ID = "mx.e2e.test"
GREYLIST_DELAY = 2
DKIM_BITS = "2048"
USERS = {"alice@example.com": "alice-secret", "bob@example.com": "bob-secret"}


class Skip(Exception):
    pass


class Failure(AssertionError):
    pass


def check(condition, what):
    if not condition:
        raise Failure(what)


def log(text):
    print("[%6.2f] %s" % (time.monotonic() - START, text), flush=True)


START = time.monotonic()


def free_port():
    """A port free on 127.0.0.1 for TCP at the time of the call (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(step)


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# Configuration files: the shipped ones, with only what a loopback test must change.

def set_ini(text, section, key, value):
    """Sets `key = value` in [section] of an INI text (the line must exist, as in the shipped
    postwarden.conf, which lists every key)."""
    out, current, done = [], None, False
    for line in text.splitlines():
        m = re.match(r"\s*\[([^\]]+)\]", line)
        if m:
            current = m.group(1).strip()
        elif current == section and re.match(r"\s*%s\s*=" % re.escape(key), line):
            line = "%s = %s" % (key, value)
            done = True
        out.append(line)
    if not done:
        raise RuntimeError("conf/postwarden.conf has no [%s] %s" % (section, key))
    return "\n".join(out) + "\n"


def main_cf_example(source, policy_port, milter_port, with_milter, resolver_ns, milter_unix=False):
    """conf/main.cf.example with loopback ports substituted (or the milter on the README's unix
    socket, relative to the queue directory). Returns (text, notes)."""
    text = open(os.path.join(source, "conf/main.cf.example")).read()
    notes = []
    policy = "check_policy_service unix:postwarden/policyd.sock"
    n = text.count(policy)
    check(n >= 2, "conf/main.cf.example no longer has " + policy)
    text = text.replace(policy, "check_policy_service inet:127.0.0.1:%d" % policy_port)
    notes.append("%s -> inet port %d (%d places)" % (policy, policy_port, n))
    check("smtpd_milters = inet:127.0.0.1:8891" in text,
          "conf/main.cf.example no longer has smtpd_milters = inet:127.0.0.1:8891")
    if with_milter and milter_unix:
        text = text.replace("inet:127.0.0.1:8891", "unix:postwarden/milter.sock")
        notes.append("smtpd_milters inet:127.0.0.1:8891 -> unix:postwarden/milter.sock")
    elif with_milter:
        text = text.replace("inet:127.0.0.1:8891", "inet:127.0.0.1:%d" % milter_port)
        notes.append("smtpd_milters inet:127.0.0.1:8891 -> port %d" % milter_port)
    else:
        # milter_default_action = tempfail: with no milter every message would wait.
        text = re.sub(r"(?m)^smtpd_milters = .*$",
                      "# e2e: postwarden-milter is not built; smtpd_milters left out", text)
        notes.append("smtpd_milters left out: build/milter/postwarden-milter does not exist")
    if not resolver_ns:
        # No private resolv.conf: these would ask the machine's resolver, i.e. leave the machine.
        for rule in ("reject_unknown_client_hostname", "reject_rbl_client zen.spamhaus.org",
                     "reject_unknown_sender_domain", "reject_unknown_recipient_domain"):
            text = re.sub(r"(?m)^(\s+)%s,?$" % re.escape(rule), r"\1# e2e: dropped " + rule, text)
            notes.append("%s dropped (no private resolver namespace)" % rule)
        # a list may now end with a comma
        text = re.sub(r",(\n(?:\s+# e2e: dropped [^\n]*\n)+)(?=\S|\n|$)", r"\1", text)
    return text, notes


# ---------------------------------------------------------------------------------------------
# Processes

class Child:
    """A child process with its output in a log file, stopped by its PID."""

    def __init__(self, name, argv, log_path, **kwargs):
        self.name = name
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, **kwargs)

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc.poll() is None

    def stop(self, grace=5):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def output(self):
        try:
            return open(self.log_path, errors="replace").read()
        except OSError:
            return ""


def children_of(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = open("/proc/%s/stat" % d).read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            out.append(int(d))
    return out


def processes_with_env(name, value):
    """PIDs whose environment has name=value (Postfix daemons inherit MAIL_CONFIG)."""
    needle = ("%s=%s" % (name, value)).encode()
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            env = open("/proc/%s/environ" % d, "rb").read().split(b"\0")
        except OSError:
            continue
        if needle in env:
            out.append(int(d))
    return out


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie counts as gone
    try:
        return open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def load_dnsserver(source):
    spec = importlib.util.spec_from_file_location(
        "dnsserver", os.path.join(source, "tests/fixtures/dnsserver.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class DnsServer:
    """tests/fixtures/dnsserver.py's zone server, in this process, on 127.R.R.R port 53 so that a
    resolv.conf can name it (resolv.conf has no port)."""

    def __init__(self, source, zone_text):
        ds = load_dnsserver(source)
        zone = ds.load_zone_text(zone_text)
        for _ in range(50):
            address = "127.%d.%d.%d" % (random.randint(1, 254), random.randint(0, 255),
                                        random.randint(1, 254))
            ds.UDPServer.address_family = socket.AF_INET
            ds.TCPServer.address_family = socket.AF_INET
            try:
                udp = ds.UDPServer((address, 53), ds.UDPHandler)
            except OSError:
                continue
            try:
                tcp = ds.TCPServer((address, 53), ds.TCPHandler)
            except OSError:
                udp.server_close()
                continue
            break
        else:
            raise RuntimeError("no free 127.x.y.z:53 for the DNS server")
        udp.zone = tcp.zone = zone
        self.address, self.udp, self.tcp = address, udp, tcp
        for server in (udp, tcp):
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self):
        for server in (self.udp, self.tcp):
            server.shutdown()
            server.server_close()


class Redis:
    def __init__(self, directory, extra=()):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.port = free_port()
        self.extra = list(extra)  # more redis-server arguments (the Sentinel setup's nodes)
        self.child = None
        self.start()

    def start(self):
        self.child = Child("redis", ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                     "--save", "", "--appendonly", "no", "--dir", self.dir,
                                     "--daemonize", "no"] + self.extra,
                           os.path.join(self.dir, "redis.log"))
        if not wait_until(lambda: self.cli("PING") == "PONG", 10):
            raise RuntimeError("redis-server did not answer PING:\n" + self.child.output())

    def stop(self):
        if self.child:
            self.child.stop()

    def cli(self, *args):
        """redis-cli, exactly as an operator types it; returns its output stripped."""
        r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port)] + list(args),
                           capture_output=True, text=True, timeout=10)
        return r.stdout.strip()


SENTINEL_MASTER = "mymaster"


class RedisSentinel:
    """docs/ha.md's setup on loopback: a master, a replica and three `redis-server --sentinel`
    (quorum 2, down-after-milliseconds 1000, failover-timeout 3000), as tests/fixtures/redis_ha.cpp
    starts them. It stands in for World.redis: cli() and port go to the master the Sentinels name
    at the time of the call, so the scenarios' helpers work across a failover."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.nodes, self.sentinels = [], []  # Redis; (port, Child)
        try:
            self.start()
        except BaseException:
            self.stop()
            raise

    def start(self):
        # A replica's full sync starts at once (not after a diskless sync's 5 s wait), and SIGTERM
        # stops a master at once instead of waiting for its replicas.
        node = ["--repl-diskless-sync-delay", "0", "--shutdown-timeout", "0"]
        self.nodes.append(Redis(os.path.join(self.dir, "master"), node))
        master = self.nodes[0].port
        self.nodes.append(Redis(os.path.join(self.dir, "replica"),
                                node + ["--replicaof", "127.0.0.1", str(master)]))
        if not wait_until(lambda: "state=online" in self.nodes[0].cli("INFO", "replication"), 10):
            raise RuntimeError("the replica did not sync with the master")
        for i in range(3):
            port = free_port()
            conf = os.path.join(self.dir, "sentinel%d.conf" % i)
            open(conf, "w").write(
                "port %d\nbind 127.0.0.1\ndaemonize no\ndir %s\n"
                "sentinel monitor %s 127.0.0.1 %d 2\n"
                "sentinel down-after-milliseconds %s 1000\n"
                "sentinel failover-timeout %s 3000\n"
                % (port, self.dir, SENTINEL_MASTER, master, SENTINEL_MASTER, SENTINEL_MASTER))
            self.sentinels.append((port, Child("sentinel", ["redis-server", conf, "--sentinel"],
                                               os.path.join(self.dir, "sentinel%d.log" % i))))
        # A failover needs the Sentinels to know each other (hello messages every 2 s) and the
        # replica.
        def agree():
            for port, _ in self.sentinels:
                state = self.sentinel_cli(port, "SENTINEL", "master", SENTINEL_MASTER).split("\n")
                fields = dict(zip(state[0::2], state[1::2]))
                if fields.get("num-other-sentinels") != "2" or fields.get("num-slaves") != "1":
                    return False
            return True
        if not wait_until(agree, 15, 0.2):
            raise RuntimeError("the Sentinels did not discover each other and the replica:\n" +
                               self.events())

    def stop(self):
        for _, child in reversed(self.sentinels):
            child.stop()
        for node in reversed(self.nodes):
            node.stop()

    @staticmethod
    def sentinel_cli(port, *args):
        r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port)] + list(args),
                           capture_output=True, text=True, timeout=10)
        return r.stdout.strip()

    def setting(self):
        """The value of [redis] sentinels."""
        return ", ".join("127.0.0.1:%d" % port for port, _ in self.sentinels)

    def named_master(self, port):
        """The master's port as the Sentinel on `port` names it (SENTINEL
        get-master-addr-by-name), or None."""
        answer = self.sentinel_cli(port, "SENTINEL", "get-master-addr-by-name", SENTINEL_MASTER)
        lines = answer.split("\n")
        return int(lines[1]) if len(lines) == 2 and lines[1].isdigit() else None

    @property
    def port(self):
        for port, child in self.sentinels:
            if child.running():
                master = self.named_master(port)
                if master:
                    return master
        raise RuntimeError("no Sentinel names a master")

    def node(self, port):
        return next(n for n in self.nodes if n.port == port)

    def cli(self, *args):
        """redis-cli on the master the Sentinels name now."""
        return self.node(self.port).cli(*args)

    def wait_for_switch(self, old_port, timeout):
        """Waits until every Sentinel names a master other than old_port; returns its port."""
        def switched():
            ports = {self.named_master(port) for port, child in self.sentinels if child.running()}
            return len(ports) == 1 and None not in ports and old_port not in ports and ports.pop()
        new = wait_until(switched, timeout, 0.1)
        check(new, "the Sentinels did not fail over within %d s:\n%s" % (timeout, self.events()))
        return new

    def events(self, only=" # +"):
        """The Sentinels' event lines (+sdown, +odown, +switch-master, ...), or only those
        that contain `only`."""
        out = []
        for i, (_, child) in enumerate(self.sentinels):
            out += ["sentinel%d: %s" % (i, line) for line in child.output().splitlines()
                    if " # " in line and only in line]
        return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# The world of one scenario

MASTER_CF = """\
# e2e master.cf: no chroot (the queue is in a temporary directory), smtpd on loopback only.
{smtpd}   inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

# Settings of this Postfix instance that are not about postwarden (and so are not in
# conf/main.cf.example): where it lives, that it listens and relays on loopback only, XCLIENT
# for the test client, and Dovecot SASL as the README's wiring section describes.
INSTANCE_CF = """\
# ---- e2e instance settings (not part of conf/main.cf.example) ----
compatibility_level = 3.6
queue_directory = {tmp}/postfix-queue
data_directory = {tmp}/postfix-data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = {tmp}/maillog
maillog_file_prefixes = {tmp}
myhostname = {authserv}
mydomain = e2e.test
myorigin = $myhostname
mydestination =
local_recipient_maps =
local_transport = error:5.1.1 local delivery is off in this test
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains = example.net
# every accepted message goes to the loopback sink; no MX is ever looked up
relayhost = [127.0.0.1]:{sink_port}
smtp_dns_support_level = disabled
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
smtpd_authorized_xclient_hosts = 127.0.0.0/8
smtputf8_enable = no
biff = no
{sasl}
# ---- conf/main.cf.example{notes} ----
"""

# Dovecot as the SASL provider, as the README's wiring section says; added here only when
# conf/main.cf.example does not set them itself.
SASL_CF = {"smtpd_sasl_auth_enable": "yes", "smtpd_sasl_type": "dovecot",
           "smtpd_sasl_path": "private/auth"}

DOVECOT_CONF = """\
# e2e: Dovecot only as Postfix's SASL provider (README: Wiring into Postfix and Dovecot).
base_dir = {tmp}/dovecot-run
state_dir = {tmp}/dovecot-state
log_path = {tmp}/dovecot.log
protocols = none
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {tmp}/dovecot-users
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}}
service auth {{
  unix_listener {tmp}/postfix-queue/private/auth {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
"""


class World:
    def __init__(self, args, zone, need_milter=False, quota_limits=None, quota_auto_block=None,
                 milter_unix=False, sentinel=False):
        self.args = args
        self.source, self.build = args.source, args.build
        self.tmp = tempfile.mkdtemp(prefix="postwarden-e2e-")
        os.chmod(self.tmp, 0o755)  # Postfix daemons run as postfix, smtp-sink as nobody
        self.stack = []  # (name, stop function), stopped in reverse
        self.milter_binary = os.path.join(self.build, "milter/postwarden-milter")
        self.with_milter = os.access(self.milter_binary, os.X_OK)
        self.zone = zone
        self.quota_limits, self.quota_auto_block = quota_limits, quota_auto_block
        self.sentinel = sentinel  # Redis through Sentinels (RedisSentinel) instead of one Redis
        self.postfix_dir = os.path.join(self.tmp, "postfix")
        self.sink_dir = os.path.join(self.tmp, "sink")
        # The milter on a unix socket in Postfix's queue directory, as the README's milter
        # section shows for a chrooted smtpd: [milter] listen = unix:QUEUE/postwarden/milter.sock,
        # socket_group = postfix, and smtpd_milters = unix:postwarden/milter.sock (relative).
        self.milter_socket = (os.path.join(self.tmp, "postfix-queue/postwarden/milter.sock")
                              if milter_unix else None)

    # -- start ---------------------------------------------------------------------------------
    def start(self):
        self.dns = DnsServer(self.source, self.zone)
        self.stack.append(("dns", self.dns.stop))
        log("dns server on %s:53" % self.dns.address)

        if self.sentinel:
            self.redis = RedisSentinel(os.path.join(self.tmp, "redis-ha"))
            self.stack.append(("redis", self.redis.stop))
            log("redis master pid %d on 127.0.0.1:%d, replica pid %d on 127.0.0.1:%d, "
                "Sentinels %s" % (self.redis.nodes[0].child.pid, self.redis.nodes[0].port,
                                  self.redis.nodes[1].child.pid, self.redis.nodes[1].port,
                                  self.redis.setting()))
        else:
            self.redis = Redis(os.path.join(self.tmp, "redis"))
            self.stack.append(("redis", self.redis.stop))
            log("redis-server pid %d on 127.0.0.1:%d" % (self.redis.child.pid, self.redis.port))

        self.policy_port = free_port()
        self.milter_port = free_port()
        conf = open(os.path.join(self.source, "conf/postwarden.conf")).read()
        if self.sentinel:
            # Nothing listens on address: with sentinels set it must be ignored (docs/ha.md).
            conf = set_ini(conf, "redis", "address", "127.0.0.1:%d" % free_port())
            conf = set_ini(conf, "redis", "sentinels", self.redis.setting())
            conf = set_ini(conf, "redis", "master_name", SENTINEL_MASTER)
        else:
            conf = set_ini(conf, "redis", "address", "127.0.0.1:%d" % self.redis.port)
        conf = set_ini(conf, "policyd", "listen", "127.0.0.1:%d" % self.policy_port)
        conf = set_ini(conf, "greylist", "delay", str(GREYLIST_DELAY))
        if self.milter_socket:
            directory = os.path.dirname(self.milter_socket)
            os.makedirs(directory)
            os.chown(directory, 0, grp.getgrnam("postfix").gr_gid)
            os.chmod(directory, 0o750)
            conf = set_ini(conf, "milter", "listen", "unix:" + self.milter_socket)
            conf = set_ini(conf, "milter", "socket_group", "postfix")
        else:
            conf = set_ini(conf, "milter", "listen", "inet:%d@127.0.0.1" % self.milter_port)
        conf = set_ini(conf, "milter", "authserv_id", AUTHSERV_ID)
        conf = set_ini(conf, "dns", "nameservers", "%s:53" % self.dns.address)
        if self.quota_limits:
            conf = set_ini(conf, "quota", "limits", self.quota_limits)
        if self.quota_auto_block:
            conf = set_ini(conf, "quota", "auto_block", self.quota_auto_block)
        if getattr(self, "auth_port", None):  # login protection: scenario auth-lockout only
            for key, value in AUTH_SETTINGS.items():
                conf = set_ini(conf, "auth", key, value.format(port=self.auth_port))
        self.conf_path = os.path.join(self.tmp, "postwarden.conf")
        open(self.conf_path, "w").write(conf)

        policyd = os.path.join(self.build, "policyd/postwarden-policyd")
        self.policyd = Child("policyd", [policyd, "-c", self.conf_path, "-f"],
                             os.path.join(self.tmp, "policyd.log"))
        self.stack.append(("policyd", self.policyd.stop))
        if not wait_until(lambda: port_open(self.policy_port) or not self.policyd.running(), 10) \
                or not self.policyd.running():
            raise RuntimeError("postwarden-policyd did not start:\n" + self.policyd.output())
        log("postwarden-policyd pid %d on 127.0.0.1:%d" % (self.policyd.pid, self.policy_port))

        if self.with_milter:
            self.milter = Child("milter", [self.milter_binary, "-c", self.conf_path, "-f"],
                                os.path.join(self.tmp, "milter.log"))
            self.stack.append(("milter", self.milter.stop))
            listening = ((lambda: os.path.exists(self.milter_socket)) if self.milter_socket
                         else (lambda: port_open(self.milter_port)))
            if not wait_until(lambda: listening() or not self.milter.running(), 10) \
                    or not self.milter.running():
                raise RuntimeError("postwarden-milter did not start:\n" + self.milter.output())
            log("postwarden-milter pid %d on %s" % (
                self.milter.pid, self.milter_socket or "127.0.0.1:%d" % self.milter_port))

        # smtp-sink: one file per message (-d), as nobody (it refuses to run as root without -u).
        os.makedirs(self.sink_dir)
        os.chmod(self.sink_dir, 0o777)
        self.sink_port = free_port()
        self.sink = Child("smtp-sink", ["smtp-sink", "-u", "nobody", "-d",
                                        os.path.join(self.sink_dir, "msg."),
                                        "127.0.0.1:%d" % self.sink_port, "20"],
                          os.path.join(self.tmp, "sink.log"))
        self.stack.append(("smtp-sink", self.sink.stop))
        if not wait_until(lambda: port_open(self.sink_port), 10):
            raise RuntimeError("smtp-sink did not start:\n" + self.sink.output())
        log("smtp-sink pid %d on 127.0.0.1:%d" % (self.sink.pid, self.sink_port))

        self.start_postfix()
        self.start_dovecot()
        self.wait_for_smtpd()

    def start_postfix(self):
        os.makedirs(self.postfix_dir)
        os.makedirs(os.path.join(self.tmp, "postfix-queue"), mode=0o755, exist_ok=True)
        self.smtp_port = free_port()
        # A private resolv.conf in a private mount namespace for Postfix only.
        resolv = os.path.join(self.tmp, "resolv.conf")
        open(resolv, "w").write("nameserver %s\noptions timeout:2 attempts:1\n" % self.dns.address)
        hosts = os.path.join(self.tmp, "hosts")
        open(hosts, "w").write("127.0.0.1 localhost\n127.0.0.1 %s\n" % AUTHSERV_ID)
        probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                "mount --bind %s /etc/resolv.conf" % resolv],
                               capture_output=True, text=True)
        self.private_resolver = probe.returncode == 0
        example, notes = main_cf_example(self.source, self.policy_port, self.milter_port,
                                         self.with_milter, self.private_resolver,
                                         self.milter_socket is not None)
        self.cf_notes = notes
        if not self.private_resolver:
            log("cannot make a private mount namespace (%s); DNS-based Postfix restrictions "
                "dropped" % probe.stderr.strip())
        sasl = "".join("%s = %s\n" % kv for kv in SASL_CF.items()
                       if not re.search(r"(?m)^%s\s*=" % kv[0], example))
        if sasl:
            sasl = "# Dovecot SASL (README: Wiring into Postfix and Dovecot)\n" + sasl
        main_cf = INSTANCE_CF.format(tmp=self.tmp, authserv=AUTHSERV_ID, sink_port=self.sink_port,
                                     sasl=sasl, notes="".join("\n# e2e: " + n for n in notes))
        open(os.path.join(self.postfix_dir, "main.cf"), "w").write(main_cf + example)
        open(os.path.join(self.postfix_dir, "master.cf"), "w").write(
            MASTER_CF.format(smtpd="127.0.0.1:%d" % self.smtp_port))
        for n in notes:
            log("main.cf.example: " + n)

        start = ["postfix", "-c", self.postfix_dir, "start"]
        if self.private_resolver:
            start = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                     "mount --bind %s /etc/resolv.conf && mount --bind %s /etc/hosts && exec %s"
                     % (resolv, hosts, " ".join(start))]
        self.stack.append(("postfix", self.stop_postfix))
        r = subprocess.run(start, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("postfix start failed:\n" + r.stdout + r.stderr + self.maillog())
        log("postfix master pid %s, config %s" % (self.master_pid(), self.postfix_dir))

    def wait_for_smtpd(self):
        # Only once Dovecot's socket exists: an smtpd that finds no SASL mechanisms exits.
        if not wait_until(lambda: port_open(self.smtp_port), 15):
            raise RuntimeError("postfix smtpd does not listen:\n" + self.maillog())
        log("postfix smtpd on 127.0.0.1:%d" % self.smtp_port)

    def master_pid(self):
        try:
            return int(open(os.path.join(self.tmp, "postfix-queue/pid/master.pid")).read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop_postfix(self):
        pid = self.master_pid()
        subprocess.run(["postfix", "-c", self.postfix_dir, "stop"], capture_output=True, timeout=30)
        if pid:
            wait_until(lambda: not pid_alive(pid), 15)
        # Every Postfix daemon of this instance carries MAIL_CONFIG=<our dir>: none may be left.
        left = processes_with_env("MAIL_CONFIG", self.postfix_dir)
        if left:
            wait_until(lambda: not [p for p in left if pid_alive(p)], 5)
            left = [p for p in left if pid_alive(p)]
        for p in left:
            log("postfix process %d left after stop; killing it" % p)
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.postfix_leftovers = left

    def start_dovecot(self):
        users = os.path.join(self.tmp, "dovecot-users")
        open(users, "w").write("".join("%s:{PLAIN}%s::::::\n" % u for u in USERS.items()))
        os.chmod(users, 0o644)
        conf = os.path.join(self.tmp, "dovecot.conf")
        text = DOVECOT_CONF.format(tmp=self.tmp)
        if getattr(self, "auth_port", None):
            text += DOVECOT_AUTH_POLICY.format(port=self.auth_port, key=AUTH_SETTINGS["api_key"])
            if not getattr(self, "imap_port", None):
                text += DOVECOT_NO_PENALTY
        if getattr(self, "imap_port", None):  # IMAP logins: scenario auth-imap only
            mail = os.path.join(self.tmp, "imap-mail")
            os.mkdir(mail)
            os.chmod(mail, 0o1777)  # the imap process runs as nobody
            text += DOVECOT_IMAP.format(port=self.imap_port, mail=mail)
        open(conf, "w").write(text)
        self.dovecot = Child("dovecot", ["dovecot", "-F", "-c", conf],
                             os.path.join(self.tmp, "dovecot.out"))
        self.stack.append(("dovecot", self.stop_dovecot))
        sock = os.path.join(self.tmp, "postfix-queue/private/auth")
        if not wait_until(lambda: os.path.exists(sock) or not self.dovecot.running(), 10) \
                or not self.dovecot.running():
            raise RuntimeError("dovecot did not start:\n" + self.dovecot.output() +
                               self.read(os.path.join(self.tmp, "dovecot.log")))
        log("dovecot pid %d, SASL socket %s" % (self.dovecot.pid, sock))

    def stop_dovecot(self):
        # Dovecot's master exits on SIGTERM; its own children (log, config, anvil, auth) follow
        # when their pipe to it closes, which can take seconds: they are ours, so they are
        # told directly.
        kids = children_of(self.dovecot.pid)
        self.dovecot.stop()
        for p in kids:
            if pid_alive(p):
                os.kill(p, signal.SIGTERM)
        wait_until(lambda: not [p for p in kids if pid_alive(p)], 5)
        for p in kids:
            if pid_alive(p):
                log("dovecot process %d left after SIGTERM; killing it" % p)
                os.kill(p, signal.SIGKILL)

    # -- stop ----------------------------------------------------------------------------------
    def stop(self):
        errors = []
        while self.stack:
            name, fn = self.stack.pop()
            try:
                fn()
            except Exception as e:  # keep stopping the others
                errors.append("%s: %r" % (name, e))
        if self.args.keep:
            log("kept %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return errors

    def read(self, path):
        try:
            return open(path, errors="replace").read()
        except OSError:
            return ""

    def maillog(self):
        return self.read(os.path.join(self.tmp, "maillog"))

    def dump_logs(self):
        for name in ("maillog", "policyd.log", "milter.log", "dovecot.log", "sink.log"):
            text = self.read(os.path.join(self.tmp, name))
            if text:
                print("----- %s (last 60 lines) -----" % name)
                print("\n".join(text.splitlines()[-60:]))
        if self.sentinel:
            print("----- Sentinel events -----\n" + self.redis.events())

    # -- mail ----------------------------------------------------------------------------------
    def client(self, addr=None, name=None, helo="mx.client.example"):
        return Client(self.smtp_port, addr, name, helo)

    def delivered(self, token, timeout=15):
        """The text of the message stored by the sink that contains token, waiting for it."""
        def find():
            for path in glob.glob(os.path.join(self.sink_dir, "msg.*")):
                text = self.read(path)
                if token in text:
                    return text
            return None
        return wait_until(find, timeout, 0.1)

    def never_delivered(self, token, wait=2):
        time.sleep(wait)
        return self.delivered(token, timeout=0) is None


class Client:
    """One SMTP session with Postfix; XCLIENT makes it look like another client."""

    def __init__(self, port, addr=None, name=None, helo="mx.client.example"):
        self.smtp = smtplib.SMTP("127.0.0.1", port, local_hostname="e2e-client.test", timeout=30)
        self.smtp.ehlo()
        if addr:
            check(self.smtp.has_extn("xclient"), "Postfix does not offer XCLIENT")
            code, msg = self.smtp.docmd("XCLIENT", "ADDR=%s NAME=%s" % (addr, name or helo))
            check(code == 220, "XCLIENT answered %d %s" % (code, msg))
            self.smtp.ehlo_resp = None
            self.smtp.esmtp_features = {}
            self.smtp.does_esmtp = False
        code, msg = self.smtp.ehlo(helo)
        check(code == 250, "EHLO answered %d %s" % (code, msg))

    def login(self, user, password):
        """AUTH PLAIN (one mechanism: smtplib's login() would try LOGIN after a failure)."""
        self.smtp.user, self.smtp.password = user, password
        try:
            code, msg = self.smtp.auth("PLAIN", self.smtp.auth_plain)
        except smtplib.SMTPAuthenticationError as e:
            return e.smtp_code, e.smtp_error.decode(errors="replace")
        return code, msg.decode(errors="replace")

    def send(self, sender, rcpts, message):
        """One transaction; returns {"mail": (code, text), "rcpt": [(code, text)...],
        "data": (code, text) or None}. Never raises on a refusal: the replies are the result."""
        result = {"mail": None, "rcpt": [], "data": None}
        code, msg = self.smtp.mail(sender)
        result["mail"] = (code, msg.decode(errors="replace"))
        if code != 250:
            self.smtp.rset()
            return result
        for r in rcpts:
            code, msg = self.smtp.rcpt(r)
            result["rcpt"].append((code, msg.decode(errors="replace")))
        if any(c == 250 for c, _ in result["rcpt"]):
            try:
                code, msg = self.smtp.data(message)
            except smtplib.SMTPDataError as e:
                code, msg = e.smtp_code, e.smtp_error
            result["data"] = (code, msg.decode(errors="replace") if isinstance(msg, bytes) else msg)
        if result["data"] is None or result["data"][0] != 250:
            try:
                self.smtp.rset()
            except smtplib.SMTPException:
                pass
        return result

    def close(self):
        try:
            self.smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass


def summary(result):
    parts = ["MAIL %d %s" % result["mail"]]
    parts += ["RCPT %d %s" % r for r in result["rcpt"]]
    if result["data"]:
        parts.append("DATA %d %s" % result["data"])
    return " | ".join(parts)


def accepted(result):
    return result["data"] is not None and result["data"][0] == 250


def make_message(sender_header, rcpt, subject, token, extra_headers=(), dkim_key=None):
    """A small RFC 5322 message with CRLF line ends; signed with DKIM when dkim_key is
    (domain, selector, private_key_pem)."""
    lines = ["From: %s" % sender_header, "To: <%s>" % rcpt, "Subject: %s %s" % (subject, token),
             "Date: %s" % email.utils.formatdate(localtime=False),
             "Message-ID: <%s@e2e.test>" % token, "MIME-Version: 1.0",
             "Content-Type: text/plain; charset=us-ascii"]
    lines += list(extra_headers)
    body = ["", "Hello from the postwarden end-to-end test.", "token %s" % token, ""]
    message = ("\r\n".join(lines + body)).encode()
    if dkim_key:
        import dkim
        domain, selector, key = dkim_key
        sig = dkim.sign(message, selector.encode(), domain.encode(), key,
                        canonicalize=(b"relaxed", b"relaxed"),
                        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
        message = sig + message
    return message


def new_token():
    return "e2e%08x" % random.getrandbits(32)


def header_values(text, name):
    """Unfolded values of header `name` in the head of a stored message."""
    head = text.split("\n\n", 1)[0].replace("\r\n", "\n")
    head = re.sub(r"\n[ \t]+", " ", head)
    out = []
    for line in head.split("\n"):
        if line.lower().startswith(name.lower() + ":"):
            out.append(line.split(":", 1)[1].strip())
    return out


# ---------------------------------------------------------------------------------------------
# Zones

BASE_ZONE = """\
# recipient domains (reject_unknown_recipient_domain asks for MX/A)
example.net            MX    10 mx.example.net
mx.example.net         A     192.0.2.25
remote.example         MX    10 mx.remote.example
mx.remote.example      A     192.0.2.80
# our users' domain
example.com            MX    10 mx.example.com
mx.example.com         A     192.0.2.26
# a sender domain with no SPF, no DMARC
plain.example          A     192.0.2.30
# lists scenario
shop.icu               A     192.0.2.40
mail.shop.icu          A     198.51.100.20
# a client listed in the DNSBL that main.cf.example names
66.113.0.203.zen.spamhaus.org A  127.0.0.2
66.113.0.203.zen.spamhaus.org TXT "listed by the e2e test"
"""


def dkim_zone(tmp):
    """(zone text, key) for signed.example: SPF for 198.51.100.0/24, a DKIM key, DMARC reject."""
    key_path = os.path.join(tmp, "dkim.key")
    subprocess.run(["openssl", "genrsa", "-out", key_path, DKIM_BITS], check=True,
                   capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", key_path, "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    import base64
    p = base64.b64encode(der).decode()
    key = open(key_path, "rb").read()
    zone = """\
signed.example               A     192.0.2.50
signed.example               TXT   "v=spf1 ip4:198.51.100.0/24 -all"
sel._domainkey.signed.example TXT  "v=DKIM1; k=rsa; p=%s"
_dmarc.signed.example        TXT   "v=DMARC1; p=reject"
spfonly.example              A     192.0.2.51
spfonly.example              TXT   "v=spf1 ip4:198.51.100.0/24 -all"
strict.example               A     192.0.2.52
strict.example               TXT   "v=spf1 -all"
_dmarc.strict.example        TXT   "v=DMARC1; p=reject"
quar.example                 A     192.0.2.53
quar.example                 TXT   "v=spf1 -all"
_dmarc.quar.example          TXT   "v=DMARC1; p=quarantine"
""" % p
    return zone, ("signed.example", "sel", key)


# ---------------------------------------------------------------------------------------------
# Scenarios. Each gets a started World and raises Failure (or Skip).

def retry_until_accepted(world, client_factory, sender, rcpts, message_factory, timeout):
    """Sends until the message is accepted (each 4xx waits a second); returns the list of
    results, the last one accepted, or raises Failure."""
    results = []
    deadline = time.monotonic() + timeout
    while True:
        c = client_factory()
        r = c.send(sender, rcpts, message_factory())
        c.close()
        results.append(r)
        log("  " + summary(r))
        if accepted(r):
            return results
        codes = [r["mail"][0]] + [x[0] for x in r["rcpt"]] + ([r["data"][0]] if r["data"] else [])
        check(not any(500 <= c < 600 for c in codes), "refused permanently: " + summary(r))
        check(time.monotonic() < deadline, "not accepted within %ds: %s" % (timeout, summary(r)))
        time.sleep(1)


def scenario_greylist(world):
    """S1: first mail from a new server is deferred (4xx), a retry before the delay too, and
    after the delay it is delivered with the X-Greylist header."""
    token = new_token()
    sender, rcpt = "alice@plain.example", "bob@example.net"
    msg = make_message("Alice <%s>" % sender, rcpt, "greylist", token)
    client = lambda: world.client("198.51.100.10", "mx.plain.example", "mx.plain.example")
    t0 = time.monotonic()
    c = client()
    r = c.send(sender, [rcpt], msg)
    log("first: " + summary(r))
    check(r["rcpt"][0][0] == 450, "first attempt not deferred with 450: " + summary(r))
    check("4.7.1" in r["rcpt"][0][1] and "Greylisted, please try again in" in r["rcpt"][0][1],
          "first attempt not greylisted: " + summary(r))
    r = c.send(sender, [rcpt], msg)
    log("early retry: " + summary(r))
    check(r["rcpt"][0][0] == 450, "a retry before the delay was not deferred: " + summary(r))
    c.close()
    check(world.never_delivered(token, 0.5), "a deferred message was delivered")
    time.sleep(max(0, GREYLIST_DELAY + 0.5 - (time.monotonic() - t0)))
    c = client()
    r = c.send(sender, [rcpt], msg)
    c.close()
    log("retry after %.1fs: %s" % (time.monotonic() - t0, summary(r)))
    check(accepted(r), "the retry after the delay was not accepted: " + summary(r))
    text = world.delivered(token)
    check(text, "accepted message never reached the sink")
    xg = header_values(text, "X-Greylist")
    log("delivered with X-Greylist: %s" % xg)
    check(xg and re.match(r"delayed \d+ seconds by postwarden", xg[0]),
          "no X-Greylist header in the delivered message")


LIST_CASES = [
    ("pw:block:sender", "carol@mail.shop.icu",
     "Sender email or domain is blacklisted from sending through this relay"),
    ("pw:block:domain", "shop.icu",
     "Sender email or domain is blacklisted from sending through this relay"),
    ("pw:block:net", "198.51.100.0/24", "Your network is blacklisted"),
    ("pw:block:tld", "icu", "Your domain's TLD is blacklisted from sending through this relay"),
]


def scenario_lists(world):
    """S5, S6, S10: redis-cli SADD of a sender, a domain, a CIDR and a TLD each refuse the next
    message; SREM lets it through again. Also: the DNSBL of main.cf.example is consulted (on the
    loopback DNS server) when Postfix runs with a private resolver."""
    sender, rcpt = "carol@mail.shop.icu", "bob@example.net"
    client = lambda: world.client("198.51.100.20", "mail.shop.icu", "mail.shop.icu")
    token = new_token()
    log("pass greylisting once for the triplet:")
    retry_until_accepted(world, client, sender, [rcpt],
                         lambda: make_message(sender, rcpt, "lists", token), 15)
    check(world.delivered(token), "greylisted-then-accepted message not delivered")
    for key, member, text in LIST_CASES:
        check(world.redis.cli("SADD", key, member) == "1", "SADD %s %s failed" % (key, member))
        token = new_token()
        c = client()
        r = c.send(sender, [rcpt], make_message(sender, rcpt, "blocked", token))
        c.close()
        log("SADD %s %s: %s" % (key, member, summary(r)))
        check(r["rcpt"] and r["rcpt"][0][0] == 554 and "5.7.1" in r["rcpt"][0][1] and
              text in r["rcpt"][0][1], "not refused with 5.7.1 %r: %s" % (text, summary(r)))
        check(world.redis.cli("SREM", key, member) == "1", "SREM %s %s failed" % (key, member))
        token = new_token()
        c = client()
        r = c.send(sender, [rcpt], make_message(sender, rcpt, "unblocked", token))
        c.close()
        log("SREM %s %s: %s" % (key, member, summary(r)))
        check(accepted(r), "not accepted after SREM: " + summary(r))
        check(world.delivered(token), "message after SREM not delivered")
    if world.private_resolver:
        c = world.client("203.0.113.66", "mx.listed.example", "mx.listed.example")
        r = c.send("x@plain.example", [rcpt], make_message("x@plain.example", rcpt, "rbl", new_token()))
        c.close()
        log("client listed in zen.spamhaus.org (loopback zone): " + summary(r))
        check(r["rcpt"] and r["rcpt"][0][0] == 554 and "zen.spamhaus.org" in r["rcpt"][0][1],
              "reject_rbl_client did not use the loopback zone: " + summary(r))


def scenario_redis_down(world):
    """Redis stopped: mail still flows (fail_mode=open); greylisting resumes once Redis is back."""
    rcpt = "bob@example.net"
    client = lambda: world.client("198.51.100.60", "mx.plain.example", "mx.plain.example")
    world.redis.stop()
    log("redis-server stopped")
    token = new_token()
    c = client()
    r = c.send("down@plain.example", [rcpt], make_message("down@plain.example", rcpt, "down", token))
    c.close()
    log("new triplet while Redis is down: " + summary(r))
    check(accepted(r), "mail did not flow with Redis down (fail_mode=open): " + summary(r))
    text = world.delivered(token)
    check(text, "message accepted with Redis down not delivered")
    check(not header_values(text, "X-Greylist"), "X-Greylist on a message that was not greylisted")
    world.redis.start()
    log("redis-server started again on port %d" % world.redis.port)
    deadline = time.monotonic() + 15
    i = 0
    while True:
        i += 1
        sender = "back%d@plain.example" % i
        c = client()
        r = c.send(sender, [rcpt], make_message(sender, rcpt, "back", new_token()))
        c.close()
        log("new triplet after restart: " + summary(r))
        if r["rcpt"] and r["rcpt"][0][0] == 450 and "Greylisted" in r["rcpt"][0][1]:
            break
        check(time.monotonic() < deadline, "greylisting did not resume within 15 s of Redis' return")
        time.sleep(0.5)


def scenario_sasl(world):
    """An authenticated user (SASL through Dovecot) relays; a wrong password and an
    unauthenticated relay attempt are refused."""
    rcpt = "dave@remote.example"
    client = lambda: world.client("203.0.113.50", "client.isp.example", "laptop.isp.example")
    c = client()
    check(c.smtp.has_extn("auth"), "Postfix does not offer AUTH (Dovecot SASL not wired)")
    r = c.send("alice@example.com", [rcpt], make_message("alice@example.com", rcpt, "x", new_token()))
    log("unauthenticated relay: " + summary(r))
    check(r["rcpt"] and r["rcpt"][0][0] == 554 and "Relay access denied" in r["rcpt"][0][1],
          "an unauthenticated relay attempt was not refused: " + summary(r))
    c.close()
    # From another address: Dovecot delays further logins from an address that failed (anvil
    # auth penalty), which is right, but would only slow this test down.
    c = world.client("203.0.113.59", "other.isp.example", "other.isp.example")
    code, msg = c.login("alice@example.com", "wrong-password")
    log("AUTH with a wrong password: %d %s" % (code, msg))
    check(code == 535, "a wrong password was not refused with 535")
    c.close()
    c = client()
    code, msg = c.login("alice@example.com", USERS["alice@example.com"])
    log("AUTH alice@example.com: %d %s" % (code, msg))
    check(code == 235, "AUTH through Dovecot failed: %d %s" % (code, msg))
    token = new_token()
    r = c.send("alice@example.com", [rcpt], make_message("Alice <alice@example.com>", rcpt, "sasl", token))
    c.close()
    log("authenticated: " + summary(r))
    check(accepted(r), "authenticated submission not accepted: " + summary(r))
    text = world.delivered(token)
    check(text, "authenticated submission not delivered")
    check(not header_values(text, "X-Greylist"), "outbound mail was greylisted")


def need_milter(world):
    if not world.with_milter:
        raise Skip("postwarden-milter is not built (%s does not exist)" % world.milter_binary)


def scenario_s2_trusted(world):
    """S2: SPF pass and aligned DKIM from a new server: delivered at once with
    spf=pass dkim=pass dmarc=pass in Authentication-Results."""
    need_milter(world)
    token = new_token()
    sender, rcpt = "news@signed.example", "bob@example.net"
    c = world.client("198.51.100.30", "mx.signed.example", "mx.signed.example")
    r = c.send(sender, [rcpt], make_message("News <%s>" % sender, rcpt, "s2", token,
                                            dkim_key=world.dkim_key))
    c.close()
    log("first attempt: " + summary(r))
    check(accepted(r), "SPF+DKIM mail from a new server was not accepted at once: " + summary(r))
    text = world.delivered(token)
    check(text, "not delivered")
    ar = header_values(text, "Authentication-Results")
    log("Authentication-Results: %s" % ar)
    check(ar and ar[0].startswith(AUTHSERV_ID + ";"), "no Authentication-Results of ours")
    for want in ("spf=pass", "dkim=pass", "dmarc=pass"):
        check(want in ar[0], "%s missing in Authentication-Results: %s" % (want, ar[0]))
    check(not header_values(text, "X-Greylist"), "trusted mail carries X-Greylist")


def scenario_s2_spf_only(world):
    """SPF pass without DKIM: accepted at RCPT, deferred at end of data (451 4.7.1), then
    delivered after the delay."""
    need_milter(world)
    token = new_token()
    sender, rcpt = "info@spfonly.example", "bob@example.net"
    client = lambda: world.client("198.51.100.40", "mx.spfonly.example", "mx.spfonly.example")
    msg = lambda: make_message("Info <%s>" % sender, rcpt, "spf-only", token)
    t0 = time.monotonic()
    c = client()
    r = c.send(sender, [rcpt], msg())
    c.close()
    log("first attempt: " + summary(r))
    check(r["rcpt"] and r["rcpt"][0][0] == 250, "SPF-pass mail deferred at RCPT: " + summary(r))
    check(r["data"] and r["data"][0] == 451 and "4.7.1" in r["data"][1],
          "not deferred with 451 4.7.1 at end of data: " + summary(r))
    time.sleep(max(0, GREYLIST_DELAY + 0.5 - (time.monotonic() - t0)))
    retry_until_accepted(world, client, sender, [rcpt], msg, 10)
    text = world.delivered(token)
    check(text, "not delivered after the delay")
    ar = header_values(text, "Authentication-Results")
    log("Authentication-Results: %s" % ar)
    check(ar and "spf=pass" in ar[0], "no spf=pass in Authentication-Results")


def scenario_milter_unix(world):
    """The milter on a unix socket in Postfix's queue directory, as the README's milter section
    wires it (socket_group = postfix, smtpd_milters = unix:postwarden/milter.sock): the socket is
    mode 0660, group postfix, and Postfix's smtpd reaches it: a signed message gets our
    Authentication-Results, a spoofed p=reject From is refused."""
    need_milter(world)
    st = os.stat(world.milter_socket)
    log("milter socket %s: mode %o, group %s" % (world.milter_socket, stat.S_IMODE(st.st_mode),
                                                 grp.getgrgid(st.st_gid).gr_name))
    check(stat.S_ISSOCK(st.st_mode), "%s is not a socket" % world.milter_socket)
    check(stat.S_IMODE(st.st_mode) == 0o660, "milter socket mode %o, not 0660"
          % stat.S_IMODE(st.st_mode))
    check(st.st_gid == grp.getgrnam("postfix").gr_gid, "milter socket group is not postfix")
    scenario_s2_trusted(world)
    scenario_dmarc_reject(world)


def scenario_dmarc_reject(world):
    """S9: From a domain with p=reject that fails DMARC: refused 550 5.7.1, not delivered."""
    need_milter(world)
    token = new_token()
    sender, rcpt = "info@spfonly.example", "bob@example.net"
    c = world.client("198.51.100.41", "mx.spfonly.example", "mx.spfonly.example")
    r = c.send(sender, [rcpt], make_message("CEO <ceo@strict.example>", rcpt, "dmarc-reject", token))
    c.close()
    log("spoofed From strict.example (p=reject): " + summary(r))
    check(r["data"] and r["data"][0] == 550 and "5.7.1" in r["data"][1] and
          "strict.example" in r["data"][1], "not refused with 550 5.7.1: " + summary(r))
    check(world.never_delivered(token, 1), "a DMARC-rejected message was delivered")


def scenario_dmarc_quarantine(world):
    """p=quarantine failure: delivered (after greylisting, SPF passes but nothing aligns) with
    X-Postwarden-DMARC: quarantine."""
    need_milter(world)
    token = new_token()
    sender, rcpt = "info@spfonly.example", "bob@example.net"
    client = lambda: world.client("198.51.100.42", "mx.spfonly.example", "mx.spfonly.example")
    retry_until_accepted(world, client, sender, [rcpt],
                         lambda: make_message("Boss <boss@quar.example>", rcpt, "quarantine", token),
                         GREYLIST_DELAY + 12)
    text = world.delivered(token)
    check(text, "not delivered")
    q = header_values(text, "X-Postwarden-DMARC")
    ar = header_values(text, "Authentication-Results")
    log("X-Postwarden-DMARC: %s; Authentication-Results: %s" % (q, ar))
    check(q == ["quarantine"], "no X-Postwarden-DMARC: quarantine header")
    check(ar and "dmarc=fail" in ar[0], "no dmarc=fail in Authentication-Results")


def scenario_s8_from(world):
    """S8: an authenticated user sending as itself and as an alias is delivered; as someone
    else (envelope or header From) refused."""
    need_milter(world)
    rcpt = "dave@remote.example"
    world.redis.cli("SADD", "pw:alias:alice@example.com", "alice.smith@example.com")

    def session():
        c = world.client("203.0.113.51", "client.isp.example", "laptop.isp.example")
        code, msg = c.login("alice@example.com", USERS["alice@example.com"])
        check(code == 235, "AUTH failed: %d %s" % (code, msg))
        return c

    cases = [("alice@example.com", "Alice <alice@example.com>", True, "as itself"),
             ("alice.smith@example.com", "Alice Smith <alice.smith@example.com>", True, "as an alias"),
             ("mallory@example.com", "Alice <alice@example.com>", False, "envelope of someone else"),
             ("alice@example.com", "Boss <boss@example.com>", False, "header From of someone else")]
    for envelope, header, ok, what in cases:
        token = new_token()
        c = session()
        r = c.send(envelope, [rcpt], make_message(header, rcpt, "s8", token))
        c.close()
        log("%s (MAIL FROM %s, From: %s): %s" % (what, envelope, header, summary(r)))
        if ok:
            check(accepted(r), "%s not accepted: %s" % (what, summary(r)))
            check(world.delivered(token), "%s not delivered" % what)
        else:
            codes = [r["mail"]] + r["rcpt"] + ([r["data"]] if r["data"] else [])
            refusal = [x for x in codes if x[0] == 550 and "5.7.1" in x[1] and
                       "does not match your login" in x[1]]
            check(refusal, "%s not refused with 550 5.7.1 ... does not match your login: %s"
                  % (what, summary(r)))
            check(world.never_delivered(token, 0.5), "%s was delivered" % what)


def need_quota(world):
    if not glob.glob(os.path.join(world.source, "common/redis/lua/quota*.lua")):
        raise Skip("quota support is not in the tree yet (no common/redis/lua/quota*.lua)")


RFC3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)"


def scenario_quota(world):
    """S3, S4: past the limit the recipient is deferred with a retry time; attempts keep counting
    and auto_block puts the login on the block list: 'Sender address rejected: Access denied'."""
    need_quota(world)
    login = "bob@example.com"

    def session():
        c = world.client("203.0.113.52", "client.isp.example", "laptop.isp.example")
        code, msg = c.login(login, USERS[login])
        check(code == 235, "AUTH failed: %d %s" % (code, msg))
        return c

    rcpts = ["r%d@remote.example" % i for i in range(1, 4)]
    token = new_token()
    c = session()
    r = c.send(login, rcpts, make_message(login, rcpts[0], "quota", token))
    c.close()
    log("3 recipients (limit 3/3600): " + summary(r))
    check(accepted(r) and all(x[0] == 250 for x in r["rcpt"]), "within the limit not accepted")
    check(world.delivered(token), "not delivered")
    c = session()
    r = c.send(login, ["r4@remote.example"], make_message(login, "r4@remote.example", "quota", new_token()))
    c.close()
    log("4th recipient: " + summary(r))
    check(r["rcpt"] and r["rcpt"][0][0] == 450 and "4.7.1" in r["rcpt"][0][1] and
          "Sending rate limit exceeded" in r["rcpt"][0][1] and re.search(RFC3339, r["rcpt"][0][1]),
          "recipient past the limit not deferred with a retry time: " + summary(r))
    blocked = None
    for i in range(5, 15):
        c = session()
        r = c.send(login, ["r%d@remote.example" % i], make_message(login, "x@remote.example", "q", new_token()))
        c.close()
        log("attempt %d: %s" % (i, summary(r)))
        if r["rcpt"] and r["rcpt"][0][0] >= 500:
            blocked = r
            break
    check(blocked, "auto_block (6/3600) never blocked the login")
    check("5.7.1" in blocked["rcpt"][0][1] and "Sender address rejected: Access denied" in
          blocked["rcpt"][0][1], "blocked login not refused with 'Sender address rejected: "
          "Access denied': " + summary(blocked))
    check(world.redis.cli("SISMEMBER", "pw:block:login", login) == "1",
          "the login is not in pw:block:login")
    why = world.redis.cli("HGET", "pw:block:why", login)
    log("pw:block:why %s = %s" % (login, why))
    check(why, "no reason in pw:block:why")


# Login protection (docs/auth.md): policyd's [auth] and the Dovecot lines the doc gives.
AUTH_SETTINGS = {"listen": "127.0.0.1:{port}", "api_key": "e2e-auth-key", "ip_lockout": "3/600",
                 "tarpit_after": "0"}
DOVECOT_AUTH_POLICY = """\
# login protection (docs/auth.md)
auth_policy_server_url = http://127.0.0.1:{port}/
auth_policy_hash_nonce = e2e-nonce-0123456789
auth_policy_server_api_header = X-API-Key: {key}
auth_policy_reject_on_fail = no
"""
DOVECOT_NO_PENALTY = """\
# Dovecot's own per-address penalty (anvil) delays the next attempt 4, 8, then 15 s: after
# three failures, longer than Postfix waits for Dovecot (10 s). Without its socket the penalty
# is off, so the scenario sees postwarden's lockout alone.
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
"""
# IMAP on loopback for scenario auth-imap, with Dovecot's penalty on. 127.0.0.1 is a trusted
# proxy (docs/auth.md: webmail) whose ID x-originating-ip Dovecot takes as the client's address.
DOVECOT_IMAP = """\
# IMAP logins (docs/auth.md)
protocols = imap
listen = 127.0.0.1
login_trusted_networks = 127.0.0.1/32
mail_location = maildir:{mail}/%n
service imap-login {{
  service_count = 0
  process_min_avail = 1
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


def scenario_auth_lockout(world):
    """S11, S12: SMTP AUTH through Dovecot's auth policy: wrong passwords from one address lock
    it out, the right one is then refused there but not elsewhere, `postwarden auth unlock` lifts
    it; block:auth refuses the right password, block:login does not refuse the login."""
    def auth(addr, login, password):
        c = world.client(addr, "client.isp.example", "laptop.isp.example")
        code, msg = c.login(login, password)
        c.close()
        log("AUTH %s from %s: %d %s" % (login, addr, code, msg))
        return code, msg

    def admin(*args):
        r = subprocess.run([os.path.join(world.build, "admin/postwarden"), "-c", world.conf_path]
                           + list(args), capture_output=True, text=True, timeout=30)
        log("postwarden %s: %d %s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    bad, good = "203.0.113.70", "203.0.113.71"
    for i in range(3):  # ip_lockout = 3/600
        code, _ = auth(bad, "bob@example.com", "wrong-%d" % i)
        check(code == 535, "a wrong password was not refused with 535")
    check(wait_until(lambda: "action=lockout client=%s" % bad in world.policyd.output(), 5),
          "policyd logged no lockout of %s" % bad)
    code, msg = auth(bad, "bob@example.com", USERS["bob@example.com"])
    check(code == 535, "the right password from a locked address was not refused")
    check(re.search("Too many failed logins, try again after " + RFC3339, msg),
          "the refusal does not say until when: " + msg)
    check("action=refuse reason=client-locked client=%s login=bob@example.com" % bad
          in world.policyd.output(), "policyd logged no refusal of the locked address")
    check(auth(good, "bob@example.com", USERS["bob@example.com"])[0] == 235,
          "another address could not log in")
    r = admin("auth", "status", bad)
    check(r.returncode == 0 and "locked until" in r.stdout, "auth status does not show the lock")
    check("auth:lockout  %s" % bad in admin("blocked").stdout, "blocked does not list the lockout")
    check(admin("auth", "unlock", bad).returncode == 0, "auth unlock failed")
    check(auth(bad, "bob@example.com", USERS["bob@example.com"])[0] == 235,
          "the unlocked address could not log in")
    # S11: an account locked until support unlocks it; S12: one blocked from sending logs in
    world.redis.cli("SADD", "pw:block:auth", "alice@example.com")
    code, msg = auth("203.0.113.72", "alice@example.com", USERS["alice@example.com"])
    check(code == 535 and "Account locked, contact support" in msg,
          "a login in block:auth was not refused with 'Account locked, contact support'")
    check("action=refuse reason=account-locked client=203.0.113.72 login=alice@example.com"
          in world.policyd.output(), "policyd logged no refusal of the block:auth login")
    world.redis.cli("SADD", "pw:block:login", "bob@example.com")
    check(auth("203.0.113.73", "bob@example.com", USERS["bob@example.com"])[0] == 235,
          "a login in block:login (S4) could not log in (S12)")


def scenario_dkim_sign(world):
    """S14: keys made with postwarden dkim keygen and activated; an authenticated user's mail,
    relayed by Postfix, carries RSA and Ed25519 signatures that dkimpy verifies, and passes SPF,
    DKIM and DMARC in our own inbound path when it comes back as inbound mail."""
    need_milter(world)
    import dkim
    # The CLI writes the keys for the milter's user: root here, as the milter runs.
    key_dir = os.path.join(world.tmp, "dkim")
    conf = set_ini(open(world.conf_path).read(), "dkim", "key_dir", key_dir)
    open(world.conf_path, "w").write(conf)
    cli_conf = os.path.join(world.tmp, "cli.conf")
    open(cli_conf, "w").write(set_ini(conf, "milter", "user", "root"))
    cli = [os.path.join(world.build, "admin/postwarden"), "-c", cli_conf]
    r = subprocess.run(cli + ["--json", "dkim", "keygen", "example.com"], capture_output=True,
                       text=True, timeout=60)
    check(r.returncode == 0, "dkim keygen failed: " + r.stderr)
    keys = json.loads(r.stdout)["keys"]
    check(sorted(k["algorithm"] for k in keys) == ["ed25519-sha256", "rsa-sha256"],
          "keygen did not make an RSA and an Ed25519 key: %s" % r.stdout)
    # Publish the records, SPF and DMARC p=reject for example.com.
    records = {k["name"]: k["txt"] for k in keys}
    extra = "".join('%s TXT "%s"\n' % (name, txt) for name, txt in records.items())
    extra += 'example.com TXT "v=spf1 ip4:198.51.100.0/24 -all"\n'
    extra += '_dmarc.example.com TXT "v=DMARC1; p=reject"\n'
    zone = load_dnsserver(world.source).load_zone_text(world.zone + extra)
    world.dns.udp.zone = world.dns.tcp.zone = zone
    r = subprocess.run(cli + ["dkim", "check", "example.com"], capture_output=True, text=True,
                       timeout=30)
    log("dkim check:\n" + r.stdout)
    check(r.returncode == 0 and len(re.findall(r"\binactive +ok +ok", r.stdout)) == 2,
          "published keys do not match the key files: " + r.stdout)
    for k in keys:
        r = subprocess.run(cli + ["dkim", "activate", "example.com", k["selector"]],
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 0, "dkim activate failed: " + r.stderr)
    r = subprocess.run(cli + ["dkim", "check", "example.com"], capture_output=True, text=True,
                       timeout=30)
    check(r.returncode == 0 and len(re.findall(r" active +ok +ok", r.stdout)) == 2,
          "check: " + r.stdout)
    os.kill(world.milter.pid, signal.SIGHUP)  # the new key_dir
    check(wait_until(lambda: "configuration reloaded" in world.milter.output(), 10),
          "the milter did not reload")

    token = new_token()
    rcpt = "dave@remote.example"
    c = world.client("203.0.113.53", "client.isp.example", "laptop.isp.example")
    code, msg = c.login("alice@example.com", USERS["alice@example.com"])
    check(code == 235, "AUTH failed: %d %s" % (code, msg))
    folded = ("Subject: signed %s, with a subject long enough to be folded\r\n"
              "\tonto a second line" % token)
    message = make_message("Alice <alice@example.com>", rcpt, "dkim", token)
    message = message.replace(b"Subject: dkim " + token.encode(), folded.encode())
    r = c.send("alice@example.com", [rcpt], message)
    c.close()
    log("authenticated submission: " + summary(r))
    check(accepted(r), "not accepted: " + summary(r))
    text = world.delivered(token)
    check(text, "not delivered")
    # smtp-sink puts the envelope in X- lines of its own before the message.
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and re.match(r"X-(Client-Addr|Client-Proto|Helo-Args|Mail-Args|Rcpt-Args):",
                             lines[0]):
        lines.pop(0)
    wire = "\r\n".join(lines).encode()
    signatures = header_values(text, "DKIM-Signature")
    log("DKIM-Signature: %s" % signatures)
    check(len(signatures) == 2, "not signed twice: %s" % signatures)

    def dnsfunc(name, timeout=5):
        return records.get(name.decode().rstrip("."), "").encode()
    for i in range(2):
        check(dkim.DKIM(wire).verify(idx=i, dnsfunc=dnsfunc),
              "dkimpy does not verify signature %d: %s" % (i, signatures[i]))
    log("dkimpy verifies both signatures")

    # Back in as inbound mail from example.com's SPF network: SPF, DKIM and DMARC pass.
    c = world.client("198.51.100.31", "mx.example.com", "mx.example.com")
    r = c.send("alice@example.com", ["bob@example.net"], wire)
    c.close()
    log("fed back as inbound mail: " + summary(r))
    check(accepted(r), "the signed message was not accepted inbound: " + summary(r))
    def inbound_copy():
        for path in glob.glob(os.path.join(world.sink_dir, "msg.*")):
            t = world.read(path)
            if token in t and "Authentication-Results" in t:
                return t
        return None
    back = wait_until(inbound_copy, 15)
    check(back, "the inbound copy was not delivered")
    ar = header_values(back, "Authentication-Results")
    log("Authentication-Results: %s" % ar)
    check(ar and ar[0].startswith(AUTHSERV_ID + ";"), "no Authentication-Results of ours")
    for k in keys:
        want = "dkim=pass header.d=example.com header.s=%s" % k["selector"]
        check(want in ar[0], "%s missing: %s" % (want, ar[0]))
    for want in ("spf=pass", "dmarc=pass"):
        check(want in ar[0], "%s missing: %s" % (want, ar[0]))


def scenario_auth_imap(world):
    """S11, S12 over IMAP, behind a trusted proxy that passes the client's address in ID
    x-originating-ip: wrong passwords lock that address out, the right one is then refused there
    but not elsewhere, `postwarden auth unlock` lifts it; block:auth refuses the right password,
    block:login logs in. Dovecot's own penalty stays on alongside, per client address."""
    imaplib.Commands.setdefault("ID", ("NONAUTH", "AUTHENTICATED", "SELECTED"))
    check(wait_until(lambda: port_open(world.imap_port), 10), "Dovecot does not listen for IMAP")

    def login(client, user, password, barrier=None):
        """LOGIN through the proxy (127.0.0.1) for client, its ID x-originating-ip, after barrier
        if given: (logged in?, the answer, seconds)."""
        start = time.monotonic()
        m = imaplib.IMAP4("127.0.0.1", world.imap_port, timeout=30)
        try:
            typ, data = m._simple_command("ID", '("x-originating-ip" "%s")' % client)
            check(typ == "OK", "ID was refused: %s %s" % (typ, data))
            if barrier:
                barrier.wait(10)
            try:
                typ, data = m.login(user, password)
                ok, text = typ == "OK", b" ".join(data).decode()
                m.logout()
            except imaplib.IMAP4.error as e:
                ok, text = False, str(e)
                m.shutdown()
        except Exception:
            m.shutdown()
            raise
        took = time.monotonic() - start
        log("IMAP LOGIN %s from %s: %s %s (%.2f s)" % (user, client, ok, text, took))
        return ok, text, took

    def admin(*args):
        r = subprocess.run([os.path.join(world.build, "admin/postwarden"), "-c", world.conf_path]
                           + list(args), capture_output=True, text=True, timeout=30)
        log("postwarden %s: %d %s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    bob, alice = USERS["bob@example.com"], USERS["alice@example.com"]
    bad, good = "203.0.113.80", "203.0.113.81"
    check(login("203.0.113.84", "alice@example.com", alice)[0], "a right password was refused")
    # Three wrong passwords at once (ip_lockout = 3/600): the count in Redis locks the address
    # however they arrive. (At once, they may also pass Dovecot's penalty, which delays a
    # client's attempts after a failure is recorded, 4 s after one, up to 15 s: a shorter test.)
    failures, barrier = [], threading.Barrier(3)
    threads = [threading.Thread(target=lambda i=i: failures.append(
        login(bad, "bob@example.com", "wrong-%d" % i, barrier=barrier))) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(len(failures) == 3 and all(not ok and "AUTHENTICATIONFAILED" in text
                                     for ok, text, _ in failures),
          "three wrong passwords were not all refused: %s" % failures)
    check(wait_until(lambda: "action=lockout client=%s" % bad in world.policyd.output(), 5),
          "policyd logged no lockout of %s (the x-originating-ip)" % bad)
    ok, text, seconds = login(bad, "bob@example.com", bob)
    check(not ok and re.search("Too many failed logins, try again after " + RFC3339, text),
          "the right password from a locked address was not refused saying until when: " + text)
    check("action=refuse reason=client-locked client=%s login=bob@example.com" % bad
          in world.policyd.output(), "policyd logged no refusal of the locked address")
    # docs/auth.md: Dovecot's penalty stays on alongside, per client address (the trusted
    # proxy's x-originating-ip), 4 s after one failure
    check(seconds >= 3, "Dovecot's penalty did not delay the attempt after failures (%.2f s)"
          % seconds)
    ok, _, seconds = login(good, "bob@example.com", bob)
    check(ok, "another address could not log in")
    check(seconds < 3, "another address behind the same proxy was delayed (%.2f s)" % seconds)
    check(admin("auth", "unlock", bad).returncode == 0, "auth unlock failed")
    check(login(bad, "bob@example.com", bob)[0], "the unlocked address could not log in")
    # S11: an account locked until support unlocks it; S12: one blocked from sending logs in
    world.redis.cli("SADD", "pw:block:auth", "alice@example.com")
    ok, text, _ = login("203.0.113.82", "alice@example.com", alice)
    check(not ok and "Account locked, contact support" in text,
          "a login in block:auth was not refused with 'Account locked, contact support': " + text)
    world.redis.cli("SADD", "pw:block:login", "bob@example.com")
    check(login("203.0.113.83", "bob@example.com", bob)[0],
          "a login in block:login (S4) could not log in over IMAP (S12)")


def scenario_sentinel(world):
    """Redis through Sentinels (docs/ha.md): a greylisted message is accepted on retry and an
    authenticated submission passes; then the master is SIGKILLed, and within 10 s of the
    Sentinels naming the promoted replica a new triplet is greylisted with its state on the new
    master, a block:sender added there refuses the next message, and a submission passes."""
    ha = world.redis
    old = ha.port
    check(old == ha.nodes[0].port, "the Sentinels do not name the master they were given")
    scenario_greylist(world)
    passed = ha.cli("KEYS", "pw:grey:*:alice@plain.example:bob@example.net").split("\n")
    check(len(passed) == 1 and ha.cli("GET", passed[0]) == "p",
          "the passed triplet is not on the master the Sentinels name: %s" % passed)
    scenario_sasl(world)
    check(ha.cli("WAIT", "1", "2000") == "1", "the replica did not acknowledge the writes")

    ha.node(old).child.proc.kill()  # SIGKILL
    ha.node(old).child.proc.wait()
    killed = time.monotonic()
    log("master 127.0.0.1:%d SIGKILLed" % old)
    new = ha.wait_for_switch(old, 15)
    switched = time.monotonic()
    log("every Sentinel names 127.0.0.1:%d, %.1f s after the kill" % (new, switched - killed))
    log("Sentinel events:\n" + ha.events("+switch-master"))
    check(new == ha.nodes[1].port and ha.cli("ROLE").split("\n")[0] == "master",
          "the replica was not promoted")
    check(ha.cli("GET", passed[0]) == "p", "the passed triplet did not survive the failover")

    bound = switched + 10
    rcpt = "bob@example.net"
    client = lambda: world.client("198.51.100.70", "mx.plain.example", "mx.plain.example")
    i = 0
    while True:  # until policyd answers from the new master (fail_mode = open until then)
        i += 1
        sender = "after%d@plain.example" % i
        c = client()
        r = c.send(sender, [rcpt], make_message(sender, rcpt, "failover", new_token()))
        c.close()
        log("new triplet %.2f s after the switch: %s" % (time.monotonic() - switched, summary(r)))
        codes = [r["mail"][0]] + [x[0] for x in r["rcpt"]]
        check(not any(500 <= c < 600 for c in codes), "refused permanently: " + summary(r))
        if r["rcpt"] and r["rcpt"][0][0] == 450 and "Greylisted" in r["rcpt"][0][1]:
            break
        check(time.monotonic() < bound, "greylisting did not resume within 10 s of the switch")
        time.sleep(0.2)
    keys = ha.cli("KEYS", "pw:grey:*:%s:%s" % (sender, rcpt)).split("\n")
    check(len(keys) == 1 and ha.cli("GET", keys[0]).startswith("f"),
          "the new triplet's state is not on the new master: %s" % keys)
    log("new master has %s = %s" % (keys[0], ha.cli("GET", keys[0])))

    check(ha.cli("SADD", "pw:block:sender", sender) == "1", "SADD on the new master failed")
    c = client()
    r = c.send(sender, [rcpt], make_message(sender, rcpt, "blocked", new_token()))
    c.close()
    log("after SADD pw:block:sender %s on the new master: %s" % (sender, summary(r)))
    check(r["rcpt"] and r["rcpt"][0][0] == 554 and "5.7.1" in r["rcpt"][0][1] and
          LIST_CASES[0][2] in r["rcpt"][0][1], "not refused by block:sender: " + summary(r))

    c = world.client("203.0.113.50", "client.isp.example", "laptop.isp.example")
    code, msg = c.login("alice@example.com", USERS["alice@example.com"])
    check(code == 235, "AUTH after the failover failed: %d %s" % (code, msg))
    token = new_token()
    r = c.send("alice@example.com", ["dave@remote.example"],
               make_message("Alice <alice@example.com>", "dave@remote.example", "after", token))
    c.close()
    log("authenticated after the failover: " + summary(r))
    check(accepted(r), "authenticated submission after the failover not accepted: " + summary(r))
    check(world.delivered(token), "authenticated submission after the failover not delivered")
    check(time.monotonic() < bound, "the flow after the switch took longer than 10 s")
    log("mail flows through the new master %.1f s after the switch" % (time.monotonic() - switched))

def readme_wiring(source):
    """The README's "Wiring into Postfix and Dovecot" section against what these tests use:
    every line of its main.cf block must be in conf/main.cf.example, in the same order, and
    every Postfix and Dovecot SASL setting the tests add must be named in the section."""
    readme = open(os.path.join(source, "README.md")).read()
    m = re.search(r"(?ms)^## Wiring into Postfix and Dovecot\n(.*?)(?=^## )", readme)
    check(m, "README.md has no section 'Wiring into Postfix and Dovecot'")
    section = m.group(1)
    block = re.search(r"(?ms)^```\n(.*?)^```", section)
    check(block, "the wiring section has no main.cf block")
    example = [l.rstrip() for l in open(os.path.join(source, "conf/main.cf.example"))]
    at = 0
    for line in block.group(1).splitlines():
        if not line.strip():
            continue
        try:
            at = example.index(line.rstrip(), at) + 1
        except ValueError:
            raise Failure("README wiring line %r is not in conf/main.cf.example (in order)" % line)
    for key, value in SASL_CF.items():
        check("%s = %s" % (key, value) in section,
              "README wiring section does not say '%s = %s' (the tests need it)" % (key, value))
    for text in ("unix_listener /var/spool/postfix/private/auth", "mode = 0660", "user = postfix",
                 "group = postfix"):
        check(text in section, "README wiring section does not say %r about Dovecot" % text)
    log("README wiring block: every line is in conf/main.cf.example, in order")


SCENARIOS = {
    "readme-wiring": (None, {}),
    "greylist": (scenario_greylist, {}),
    "lists": (scenario_lists, {}),
    "redis-down": (scenario_redis_down, {}),
    "sasl": (scenario_sasl, {}),
    "s2-trusted": (scenario_s2_trusted, {"milter": True}),
    "s2-spf-only": (scenario_s2_spf_only, {"milter": True}),
    "dmarc-reject": (scenario_dmarc_reject, {"milter": True}),
    "dmarc-quarantine": (scenario_dmarc_quarantine, {"milter": True}),
    "s8-from": (scenario_s8_from, {"milter": True}),
    "milter-unix": (scenario_milter_unix, {"milter": True, "milter_unix": True}),
    "quota": (scenario_quota, {"quota": True}),
    "auth-lockout": (scenario_auth_lockout, {"auth": True}),
    "dkim-sign": (scenario_dkim_sign, {"milter": True}),
    "auth-imap": (scenario_auth_imap, {"auth": True, "imap": True}),
    "sentinel": (scenario_sentinel, {"sentinel": True, "milter": True}),
}


def preflight(args, needs):
    if os.geteuid() != 0:
        raise Skip("needs root (Postfix's master and Dovecot start as root)")
    for tool in ("postfix", "smtp-sink", "dovecot", "redis-server", "redis-cli", "unshare", "openssl"):
        if not shutil.which(tool):
            raise Skip("%s is not installed (contrib/deps.sh installs postfix, dovecot-core, "
                       "redis-server, openssl)" % tool)
    for user in ("postfix", "dovecot", "dovenull", "nobody"):
        try:
            import pwd
            pwd.getpwnam(user)
        except KeyError:
            raise Skip("system user %s missing (postfix/dovecot-core not installed properly)" % user)
    policyd = os.path.join(args.build, "policyd/postwarden-policyd")
    if not os.access(policyd, os.X_OK):
        raise RuntimeError("%s is not built" % policyd)
    if needs.get("milter"):
        binary = os.path.join(args.build, "milter/postwarden-milter")
        if not os.access(binary, os.X_OK):
            raise Skip("postwarden-milter is not built (%s does not exist)" % binary)
    if needs.get("imap") and not os.path.exists("/usr/lib/dovecot/imap-login"):
        raise Skip("dovecot-imapd is not installed (contrib/deps.sh installs it)")
    if needs.get("quota") and not glob.glob(os.path.join(args.source, "common/redis/lua/quota*.lua")):
        raise Skip("quota support is not in the tree yet (no common/redis/lua/quota*.lua)")


def run(args, name):
    fn, needs = SCENARIOS[name]
    if fn is None:
        try:
            readme_wiring(args.source)
        except Failure as e:
            print("FAILED: e2e %s: %s" % (name, e), flush=True)
            return 1
        print("PASSED: e2e %s" % name, flush=True)
        return 0
    try:
        preflight(args, needs)
    except Skip as e:
        print("SKIPPED: e2e %s: %s" % (name, e), flush=True)
        return SKIP
    zone = BASE_ZONE
    world = World(args, None, quota_limits="3/3600" if needs.get("quota") else None,
                  quota_auto_block="6/3600" if needs.get("quota") else None,
                  milter_unix=needs.get("milter_unix", False),
                  sentinel=needs.get("sentinel", False))
    world.dkim_key = None
    if needs.get("auth"):
        world.auth_port = free_port()
    if needs.get("imap"):
        world.imap_port = free_port()
    status = 1
    try:
        if needs.get("milter"):
            extra, world.dkim_key = dkim_zone(world.tmp)
            zone += extra
        world.zone = zone
        world.start()
        log("scenario %s: %s" % (name, " ".join(fn.__doc__.split())))
        fn(world)
        status = 0
        print("PASSED: e2e %s" % name, flush=True)
    except Skip as e:
        print("SKIPPED: e2e %s: %s" % (name, e), flush=True)
        status = SKIP
    except Exception as e:
        print("FAILED: e2e %s: %s" % (name, e), flush=True)
        if not isinstance(e, Failure):
            traceback.print_exc()
        world.dump_logs()
    finally:
        errors = world.stop()
        for e in errors:
            print("error while stopping: %s" % e)
        if getattr(world, "postfix_leftovers", None):
            print("FAILED: Postfix processes were left after postfix stop: %s"
                  % world.postfix_leftovers)
            status = 1
        log("stopped everything")
    return status


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", required=True)
    parser.add_argument("--build", required=True)
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("scenario", nargs="?")
    args = parser.parse_args()
    if args.list:
        for name in SCENARIOS:
            print(name)
        return 0
    if args.scenario not in SCENARIOS:
        parser.error("unknown scenario %r; --list shows them" % args.scenario)
    # A stop signal from ctest (timeout) must still stop what was started.
    # A stop signal (ctest, Ctrl-C) or the watchdog must still stop what was started: both raise
    # in the main thread, and run()'s finally stops everything. The watchdog fires before
    # ctest's TIMEOUT (150 s), which would SIGKILL this driver and leave Postfix running.
    def interrupted(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)

    def watchdog(_signum, _frame):
        raise Failure("scenario took longer than %d s" % WATCHDOG)

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGALRM, watchdog)
    signal.alarm(WATCHDOG)
    return run(args, args.scenario)


if __name__ == "__main__":
    sys.exit(main())
