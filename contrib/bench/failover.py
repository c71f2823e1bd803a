#!/usr/bin/env python3
"""failover.py — the failover gap of postwarden-policyd through Redis Sentinel, over many
failovers: from the moment the master is SIGKILLed to the first request answered normally from
the new master, with when the Sentinels announced the new master (+switch-master) in between.

    contrib/bench/failover.py [--failovers N] [--down-after MS] [--build DIR]

Everything runs on loopback, started here on free ports and stopped by PID: three redis-server
data nodes (a master, two replicas), three `redis-server --sentinel`, and postwarden-policyd from
the build tree ([redis] sentinels, timeout_ms 250). Four connections send a SASL user's RCPT
each (quota, fail_mode closed: DUNNO when Redis answers, DEFER_IF_PERMIT 4.3.0 when it cannot)
every 5 ms. Each round: two seconds of load, then the master is SIGKILLed; the gap ends at the
first DUNNO to a request sent after the kill. The killed node is then started again as a replica
of the new master, and the next round waits until every Sentinel sees it in sync. Prints each
round and the distribution (min, median, 90th percentile, max) of: the announcement after the
kill, the first normal answer after the announcement, and the whole gap.
"""
import argparse
import os
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NAME = "mymaster"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def encode(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Resp:
    """A small blocking RESP reader over one socket."""

    def __init__(self, port, timeout=2.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        self.sock.settimeout(timeout)
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b"-"):
            return rest.decode()
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("closed")
                self.buf += data
            value, self.buf = self.buf[:n], self.buf[n + 2:]
            return value.decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ValueError("bad reply %r" % line)

    def call(self, *args):
        self.sock.sendall(encode(*args))
        return self.reply()

    def close(self):
        self.sock.close()


def parse(buf, pos=0):
    """One complete reply from buf at pos: (value, next position), or None if incomplete."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return None
    kind, rest, pos = buf[pos:pos + 1], buf[pos + 1:end], end + 2
    if kind in (b"+", b"-", b":"):
        return rest.decode(), pos
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None, pos
        if len(buf) < pos + n + 2:
            return None
        return buf[pos:pos + n].decode(), pos + n + 2
    if kind == b"*":
        items = []
        for _ in range(int(rest)):
            item = parse(buf, pos)
            if item is None:
                return None
            value, pos = item
            items.append(value)
        return items, pos
    raise ValueError("bad reply")


def ask(port, *args):
    try:
        c = Resp(port, 1.0)
        try:
            return c.call(*args)
        finally:
            c.close()
    except (OSError, ConnectionError, ValueError):
        return None


def wait(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("%s did not happen within %d s" % (what, seconds))
        time.sleep(0.05)


class Bench:
    def __init__(self, args, work):
        self.args, self.work = args, work
        self.procs = {}  # port -> Popen
        self.nodes = [free_port() for _ in range(3)]
        self.sentinels = [free_port() for _ in range(3)]
        self.switches = []  # (monotonic time, old port)
        self.replies = []  # (sent, answered, action)
        self.lock = threading.Lock()
        self.stopping = False

    def start_node(self, port, master=None):
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", self.work, "--repl-diskless-sync-delay", "0"]
        if master:
            argv += ["--replicaof", "127.0.0.1", str(master)]
        log = open(os.path.join(self.work, "node%d.log" % port), "ab")
        self.procs[port] = subprocess.Popen(argv, stdout=log, stderr=log)
        wait(lambda: ask(port, "PING") == "PONG", 10, "redis-server on %d" % port)

    def start_sentinel(self, i, port):
        conf = os.path.join(self.work, "sentinel%d.conf" % i)
        with open(conf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\ndir %s\n" % (port, self.work))
            f.write("sentinel monitor %s 127.0.0.1 %d 2\n" % (NAME, self.nodes[0]))
            f.write("sentinel down-after-milliseconds %s %d\n" % (NAME, self.args.down_after))
            f.write("sentinel failover-timeout %s 3000\n" % NAME)
            f.write("sentinel parallel-syncs %s 2\n" % NAME)
        log = open(os.path.join(self.work, "sentinel%d.log" % i), "ab")
        self.procs[port] = subprocess.Popen(["redis-server", conf, "--sentinel"], stdout=log,
                                            stderr=log)

    def master(self):
        """The master every Sentinel names, or None while they disagree."""
        named = set()
        for port in self.sentinels:
            r = ask(port, "SENTINEL", "get-master-addr-by-name", NAME)
            named.add(int(r[1]) if isinstance(r, list) else None)
        return named.pop() if len(named) == 1 else None

    def sentinels_agree(self, replicas):
        for port in self.sentinels:
            known = ask(port, "SENTINEL", "replicas", NAME)
            others = ask(port, "SENTINEL", "sentinels", NAME)
            if not isinstance(known, list) or not isinstance(others, list) or len(others) != 2:
                return False
            good = 0
            for r in known:
                fields = dict(zip(r[::2], r[1::2]))
                flags = fields.get("flags", "")
                if ("s_down" not in flags and "disconnected" not in flags and
                        fields.get("master-link-status") == "ok"):
                    good += 1
            if good < replicas:
                return False
        return True

    def subscribe(self, port):
        s = socket.create_connection(("127.0.0.1", port), 1.0)
        s.sendall(encode("SUBSCRIBE", "+switch-master"))
        return s

    def watch(self):
        """Subscribed on every Sentinel; records the first announcement of each switch."""
        socks = {port: self.subscribe(port) for port in self.sentinels}
        bufs = {port: b"" for port in self.sentinels}
        while not self.stopping:
            ready, _, _ = select.select(list(socks.values()), [], [], 0.05)
            now = time.monotonic()
            for port, sock in list(socks.items()):
                if sock not in ready:
                    continue
                data = sock.recv(65536)
                if not data:  # a Sentinel that went away: subscribe again
                    sock.close()
                    socks[port], bufs[port] = self.subscribe(port), b""
                    continue
                bufs[port] += data
                while True:
                    item = parse(bufs[port])
                    if item is None:
                        break
                    msg, used = item
                    bufs[port] = bufs[port][used:]
                    fields = msg[2].split() if isinstance(msg, list) and len(msg) == 3 else []
                    if len(fields) == 5:
                        self.note_switch(now, int(fields[2]))

    def note_switch(self, when, old):
        with self.lock:
            # each Sentinel announces the same switch: the first announcement counts
            if not any(o == old and when - w < 5 for w, o in self.switches):
                self.switches.append((when, old))

    def load(self, port, index):
        s = socket.create_connection(("127.0.0.1", port))
        f = s.makefile("rb")
        n = 0
        while not self.stopping:
            n += 1
            login = "bench%d@example.com" % index
            request = ("request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
                       "client_address=198.51.100.7\nclient_name=client.example\n"
                       "helo_name=client.example\nsender=%s\nrecipient=r%d@elsewhere.example\n"
                       "sasl_username=%s\ninstance=b%dm%d\nqueue_id=BENCH\n\n"
                       % (login, n, login, index, n))
            sent = time.monotonic()
            s.sendall(request.encode())
            action = ""
            while True:
                line = f.readline().decode()
                if line in ("\n", ""):
                    break
                if line.startswith("action="):
                    action = line[7:].strip()
            with self.lock:
                self.replies.append((sent, time.monotonic(), action))
            time.sleep(0.005)

    def run(self):
        self.start_node(self.nodes[0])
        for port in self.nodes[1:]:
            self.start_node(port, self.nodes[0])
        for i, port in enumerate(self.sentinels):
            self.start_sentinel(i, port)
        wait(lambda: self.sentinels_agree(2), 30, "Sentinel discovery")
        policy_port = free_port()
        conf = os.path.join(self.work, "postwarden.conf")
        with open(conf, "w") as f:
            f.write("[redis]\nsentinels = %s\nmaster_name = %s\ntimeout_ms = 250\n"
                    % (", ".join("127.0.0.1:%d" % p for p in self.sentinels), NAME))
            f.write("[policyd]\nlisten = 127.0.0.1:%d\n[dns]\nnameservers = 127.0.0.1:9\n"
                    "[quota]\nlimits = 100000000/3600\nauto_block = 0\n" % policy_port)
        binary = os.path.join(self.args.build, "policyd", "postwarden-policyd")
        log = open(os.path.join(self.work, "policyd.log"), "ab")
        self.procs[policy_port] = subprocess.Popen([binary, "-f", "-c", conf], stdout=log,
                                                   stderr=log)
        wait(lambda: self.accepts(policy_port), 10, "postwarden-policyd")
        threading.Thread(target=self.watch, daemon=True).start()
        for i in range(4):
            threading.Thread(target=self.load, args=(policy_port, i), daemon=True).start()
        rounds = []
        for n in range(self.args.failovers):
            time.sleep(2.0)
            wait(lambda: self.master() is not None, 30, "the Sentinels agreeing on the master")
            old = self.master()
            killed = time.monotonic()
            self.procs[old].send_signal(signal.SIGKILL)
            self.procs[old].wait()
            wait(lambda: self.announced(old, killed) is not None, 30, "the failover")
            announced = self.announced(old, killed)
            wait(lambda: self.first_normal(killed) is not None, 30, "a normal answer")
            back = self.first_normal(killed)
            failed = self.failed_after(killed)
            rounds.append((announced - killed, back - announced, back - killed))
            print("failover %2d: +switch-master %5.0f ms after the kill, first normal answer "
                  "%5.0f ms after that: gap %5.0f ms (%d answered per fail_mode)"
                  % (n + 1, 1000 * rounds[-1][0], 1000 * rounds[-1][1], 1000 * rounds[-1][2],
                     failed), flush=True)
            wait(lambda: self.master() not in (None, old), 30, "the Sentinels agreeing")
            self.start_node(old, self.master())
            wait(lambda: self.sentinels_agree(2), 30, "the killed node back as a replica")
        self.stopping = True
        return rounds

    @staticmethod
    def accepts(port):
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            return False

    def announced(self, old, since):
        with self.lock:
            for when, from_port in self.switches:
                if from_port == old and when > since:
                    return when
        return None

    def first_normal(self, since):
        with self.lock:
            times = [a for s, a, action in self.replies if s > since and action == "DUNNO"]
        return min(times) if times else None

    def failed_after(self, since):
        with self.lock:
            return sum(1 for s, a, action in self.replies if s > since and action != "DUNNO")

    def stop(self):
        self.stopping = True
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()


def describe(name, values):
    ms = sorted(1000 * v for v in values)
    p90 = ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))]
    print("%-40s min %5.0f  median %5.0f  p90 %5.0f  max %5.0f ms"
          % (name, ms[0], statistics.median(ms), p90, ms[-1]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--failovers", type=int, default=10)
    parser.add_argument("--down-after", type=int, default=1000,
                        help="Sentinel down-after-milliseconds (default 1000)")
    parser.add_argument("--build", default=os.path.join(TOP, "build"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="postwarden-failover.") as work:
        bench = Bench(args, work)
        try:
            rounds = bench.run()
        except RuntimeError as e:
            for name in sorted(os.listdir(work)):
                if name.startswith("sentinel") and name.endswith(".log"):
                    with open(os.path.join(work, name)) as f:
                        events = [line for line in f if " # " in line]
                    sys.stderr.write("%s:\n%s" % (name, "".join(events[-12:])))
            sys.exit("failover.py: %s" % e)
        finally:
            bench.stop()
    print("%d failovers, down-after-milliseconds %d:" % (len(rounds), args.down_after))
    describe("+switch-master after the kill", [r[0] for r in rounds])
    describe("first normal answer after +switch-master", [r[1] for r in rounds])
    describe("gap: kill to first normal answer", [r[2] for r in rounds])


if __name__ == "__main__":
    main()
