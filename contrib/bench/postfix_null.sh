#!/bin/sh
# postfix_null.sh — what any milter costs Postfix, and how much of it is libmilter's: a private
# Postfix driven by smtp-source, alone, with null_milter (libmilter, no work) and with
# raw_null_milter (the same answers without libmilter: one thread, epoll), on unix sockets,
# interleaved in rounds (the order rotates each round), at smtp-source -s 1 and -s 20 with the
# corpus' largest (8 KB) message, as milter.sh's Postfix rows do. Loopback only.
#
#   contrib/bench/postfix_null.sh [ROUNDS] [MESSAGES_S1] [MESSAGES_S20]   defaults: 5 2000 4000
#   BUILD=/path/to/build contrib/bench/postfix_null.sh ...   (default build-bench-release)
#   PERF=1 contrib/bench/postfix_null.sh ...   then one more measurement per configuration and
#       session count under `perf record -a` (cpu-clock, 999 Hz): CPU ms per message by command
#       and DSO, the short-lived smtpd and cleanup processes and the kernel's share included.
#
# Each measurement: wait for an empty queue and for a quiet machine (a second under 15 % busy, up
# to 90 s: other work on the machine shows as noise), smtp-source -s S -m N (the rate is N over its wall
# time), wait until Postfix has delivered everything to smtp-sink, and count CPU seconds over that
# whole window (utime + stime from /proc): every Postfix process (the master's own, its live
# children's and the exited children's it has reaped), the milter, smtp-source, smtp-sink, and the
# machine's total (from /proc/stat, so that other load on the machine shows). Postfix's processes
# are also sampled every 50 ms by command name (smtpd, cleanup, qmgr, smtp, ...); what processes
# did between their last sample and their exit is "unattributed". Postfix is set up as in
# milter.sh (in a private mount namespace with the bench's DNS server in resolv.conf).
set -eu
cd "$(dirname "$0")/../.."
rounds=${1:-5}
n1=${2:-2000}
n20=${3:-4000}
top=$PWD
py=/usr/bin/python3 # Debian's, which has python3-dkim (milter_corpus.py)
build=${BUILD:-$top/build-bench-release}
log=$(mktemp /tmp/postwarden-postfixnull-build.XXXXXX)
if ! { { [ -f "$build/CMakeCache.txt" ] ||
	cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DPOSTWARDEN_BENCH=ON; } &&
	cmake --build "$build" -j "$(nproc)" --target null_milter raw_null_milter; } >"$log" 2>&1; then
	cat "$log" >&2
	exit 1
fi
rm -f "$log"
work=$(mktemp -d /tmp/postwarden-postfixnull.XXXXXX)
chmod 755 "$work"
pids=""
postfix_dir=""
cleanup() {
	[ -n "$postfix_dir" ] && postfix -c "$postfix_dir" stop >/dev/null 2>&1
	[ -n "$pids" ] && kill $pids 2>/dev/null
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

PY=$py
. contrib/bench/lib.sh

$py contrib/bench/milter_corpus.py "$work/corpus" --messages 200 --domains 10 >/dev/null
$py contrib/bench/dns53.py "$work/corpus/zone" "$work/dnsaddr" 2>"$work/dns.log" &
pids="$pids $!"
wait_file "$work/dnsaddr"
printf 'nameserver %s\noptions timeout:2 attempts:1\n' "$(cat "$work/dnsaddr")" >"$work/resolv.conf"

(umask 0 && exec "$build/contrib/bench/null_milter" "unix:$work/null.sock") >"$work/null.log" 2>&1 &
null_pid=$!
pids="$pids $null_pid"
(umask 0 && exec "$build/contrib/bench/raw_null_milter" "unix:$work/raw.sock") >"$work/raw.log" 2>&1 &
raw_pid=$!
pids="$pids $raw_pid"
wait_file "$work/null.sock"
wait_file "$work/raw.sock"

sink_port=$(free_port)
smtp_port=$(free_port)
smtp-sink -u nobody "127.0.0.1:$sink_port" 1000 >"$work/sink.log" 2>&1 &
sink_pid=$!
pids="$pids $sink_pid"
wait_port "$sink_port"
start_postfix "$sink_port" "$smtp_port"
wait_file "$work/postfix-queue/pid/master.pid"
master_pid=$(tr -d ' \n' <"$work/postfix-queue/pid/master.pid")
# the corpus' largest message (8 KB) and its envelope, as milter.sh's -s 20 row
f=$(cd "$work/corpus" && ls -S msg-*.eml | head -1)
msg=$work/corpus/$f
sender=$(awk -F'\t' -v f="$f" '$1 == f { print $4 }' "$work/corpus/manifest.tsv")
rcpt=$(awk -F'\t' -v f="$f" '$1 == f { print $5 }' "$work/corpus/manifest.tsv")

echo "== postfix_null.sh: Postfix $(postconf -d -h mail_version), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)," \
	"$rounds rounds, -s 1 -m $n1 and -s 20 -m $n20, message $f ($(wc -c <"$msg") bytes), $(date -u +%Y-%m-%dT%H:%MZ)"
$py - "$work" "$postfix_dir" "$smtp_port" "$master_pid" "$sink_pid" "$msg" "$sender" "$rcpt" \
	"$rounds" "$n1" "$n20" "none||" "null|unix:$work/null.sock|$null_pid" "raw|unix:$work/raw.sock|$raw_pid" <<'PY'
import os, re, resource, signal, statistics, subprocess, sys, threading, time

work, pfdir, port, master, sink, msg, sender, rcpt = sys.argv[1:9]
rounds, n1, n20 = int(sys.argv[9]), int(sys.argv[10]), int(sys.argv[11])
configs = [a.split("|") for a in sys.argv[12:]]  # name, smtpd_milters, milter pid
master, sink = int(master), int(sink)
queue = os.path.join(work, "postfix-queue")
tick = os.sysconf("SC_CLK_TCK")
source_log = open(os.path.join(work, "smtp-source.log"), "a")

def stat(pid):  # (comm, utime + stime, cutime + cstime) in seconds, None if gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    comm = s[s.index("(") + 1:s.rindex(")")]
    f = s[s.rindex(")") + 2:].split()
    return comm, (int(f[11]) + int(f[12])) / tick, (int(f[13]) + int(f[14])) / tick

def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []

def postfix_cpu():  # every Postfix process's CPU so far: the master, its live and reaped children
    _, own, reaped = stat(master)
    live = sum(s[1] for s in map(stat, children(master)) if s)
    return own + reaped + live

def machine_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / tick  # all but idle and iowait

def proc_cpu(pid):
    s = stat(pid) if pid else None
    return s[1] if s else 0.0

def queue_empty():
    for d in ("maildrop", "incoming", "active", "deferred", "hold"):
        for _, _, files in os.walk(os.path.join(queue, d)):
            if files:
                return False
    return True

def drain():
    deadline = time.time() + 120
    while not queue_empty():
        if time.time() > deadline:
            sys.exit("the queue did not drain")
        time.sleep(0.05)

class Sampler(threading.Thread):  # last CPU seen of each Postfix child, by pid
    def __init__(self):
        super().__init__(daemon=True)
        self.seen, self.stop = {}, threading.Event()
    def snapshot(self):
        for pid in children(master):
            s = stat(pid)
            if s:
                self.seen[pid] = s[:2]
    def run(self):
        while not self.stop.wait(0.05):
            self.snapshot()

def smtp_source(sessions, count):
    r = subprocess.run(["smtp-source", "-s", str(sessions), "-m", str(count), "-f", sender,
                        "-t", rcpt, "-F", msg, f"127.0.0.1:{port}"], stderr=source_log)
    if r.returncode != 0:
        sys.exit(f"smtp-source exited {r.returncode}")

def use(milters):
    subprocess.run(["postconf", "-c", pfdir, "-e", f"smtpd_milters = {milters}"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["postfix", "-c", pfdir, "reload"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    time.sleep(1)
    smtp_source(4, 20)  # warm-up: a reload restarts smtpd and cleanup
    drain()

def quiet():  # waits (90 s at most) for a second in which the machine is < 15 % busy
    waited = 0
    while waited < 90:
        b0, t0 = machine_busy(), time.monotonic()
        time.sleep(1)
        if machine_busy() - b0 < 0.15 * os.cpu_count() * (time.monotonic() - t0):
            break
        waited += 1
    return waited

def measure(sessions, count, milter_pid):
    drain()
    waited = quiet()
    before = {c: stat(c) for c in children(master)}
    sampler = Sampler()
    sampler.seen = {pid: s[:2] for pid, s in before.items() if s}
    start_seen = dict(sampler.seen)
    p0, m0, k0, b0 = postfix_cpu(), proc_cpu(milter_pid), proc_cpu(sink), machine_busy()
    q0 = proc_cpu(master)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    sampler.start()
    t0 = time.monotonic()
    smtp_source(sessions, count)
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    drain()  # the delivery to smtp-sink belongs to these messages
    sampler.stop.set()
    sampler.join()
    sampler.snapshot()
    p1, m1, k1, b1 = postfix_cpu(), proc_cpu(milter_pid), proc_cpu(sink), machine_busy()
    by = {"master": proc_cpu(master) - q0}
    for pid, (comm, cpu) in sampler.seen.items():
        by[comm] = by.get(comm, 0.0) + cpu - start_seen.get(pid, (comm, 0.0))[1]
    postfix = p1 - p0
    by["unattributed"] = postfix - sum(by.values())
    src = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    ours = postfix + (m1 - m0) + (k1 - k0) + src
    return dict(waited=waited, rate=count / wall, wall=wall, postfix=postfix, milter=m1 - m0, sink=k1 - k0,
                source=src, machine=b1 - b0, other=(b1 - b0) - ours, by=by)

results = {}  # (name, sessions) -> [result]
order = list(range(len(configs)))
for r in range(rounds):
    rot = order[r % len(order):] + order[:r % len(order)]
    for i in rot:
        name, milters, pid = configs[i]
        use(milters)
        for sessions, count in ((1, n1), (20, n20)):
            x = measure(sessions, count, int(pid) if pid else 0)
            results.setdefault((name, sessions), []).append(x)
            ms = lambda v: 1000 * v / count
            print(f"round {r + 1} {name:5s} -s {sessions:2d}: {x['rate']:7.1f} msgs/s  "
                  f"CPU ms/msg: postfix {ms(x['postfix']):.3f} milter {ms(x['milter']):.3f} "
                  f"smtp-source {ms(x['source']):.3f} smtp-sink {ms(x['sink']):.3f} "
                  f"machine {ms(x['machine']):.3f} (other {ms(x['other']):.3f})  "
                  f"load {open('/proc/loadavg').read().split()[0]}"
                  + (f"  (waited {x['waited']} s for a quiet machine)" if x["waited"] else ""),
                  flush=True)

print("\n== medians (min-max) over", rounds, "rounds; ratio = median rate / Postfix alone's")
for sessions, count in ((1, n1), (20, n20)):
    base = statistics.median(x["rate"] for x in results[("none", sessions)])
    for name, _, _ in configs:
        xs = results[(name, sessions)]
        rates = [x["rate"] for x in xs]
        med = statistics.median(rates)
        print(f"-s {sessions:2d} {name:5s} {med:7.1f} msgs/s ({min(rates):.1f}-{max(rates):.1f})"
              f"  {100 * med / base:5.1f} %  rounds: " + " ".join(f"{v:.1f}" for v in rates))
print("\n== the same, as ratios within each round (rate / Postfix alone's in that round): median"
      " (min-max)")
for sessions, count in ((1, n1), (20, n20)):
    base = [x["rate"] for x in results[("none", sessions)]]
    for name, _, _ in configs[1:]:
        ratios = [100 * x["rate"] / b for x, b in zip(results[(name, sessions)], base)]
        print(f"-s {sessions:2d} {name:5s} {statistics.median(ratios):5.1f} % "
              f"({min(ratios):.1f}-{max(ratios):.1f})  rounds: " +
              " ".join(f"{v:.1f}" for v in ratios))
print("\n== CPU ms per message, medians; Postfix by process (50 ms samples)")
for sessions, count in ((1, n1), (20, n20)):
    for name, _, _ in configs:
        xs = results[(name, sessions)]
        med = lambda k: 1000 * statistics.median(x[k] for x in xs) / count
        comms = sorted({c for x in xs for c in x["by"]}, key=lambda c: -sum(x["by"].get(c, 0) for x in xs))
        by = " ".join(f"{c} {1000 * statistics.median(x['by'].get(c, 0.0) for x in xs) / count:.3f}"
                      for c in comms)
        print(f"-s {sessions:2d} {name:5s} postfix {med('postfix'):.3f} milter {med('milter'):.3f} "
              f"smtp-source {med('source'):.3f} smtp-sink {med('sink'):.3f} machine {med('machine'):.3f} "
              f"other {med('other'):.3f} | {by}")

if not os.environ.get("PERF"):
    sys.exit(0)
print("\n== perf record -a (cpu-clock, 999 Hz), one measurement each: CPU ms/msg by command and DSO"
      " (>= 0.02 ms/msg)")
line = re.compile(r"^\s*([\d.]+)%\s+(\d+)\s+(\S+)\s+(.+?)\s*$")
for sessions, count in ((1, n1), (20, n20)):
    for name, milters, pid in configs:
        use(milters)
        data = os.path.join(work, f"perf-{name}-{sessions}.data")
        perf = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "999", "-a",
                                 "-o", data], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        x = measure(sessions, count, int(pid) if pid else 0)
        perf.send_signal(signal.SIGINT)
        perf.wait()
        rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "-n", "--sort", "comm,dso"],
                             capture_output=True, text=True).stdout
        rows, by_comm = [], {}
        for l in rep.splitlines():
            m = line.match(l)
            if not m:
                continue
            ms = int(m.group(2)) * 1000 / 999 / count
            by_comm[m.group(3)] = by_comm.get(m.group(3), 0.0) + ms
            rows.append((ms, m.group(3), m.group(4)))
        print(f"-s {sessions:2d} {name:5s} {x['rate']:.1f} msgs/s; by command: " +
              " ".join(f"{c} {v:.3f}" for c, v in sorted(by_comm.items(), key=lambda i: -i[1])
                       if v >= 0.02 and c != "swapper"))
        print("      by command and DSO: " + "; ".join(f"{c} {d} {v:.3f}" for v, c, d in
                                                       sorted(rows, reverse=True)
                                                       if v >= 0.02 and c != "swapper"))
PY
echo "postfix rejects and milter failures in maillog: $(grep -c -E 'reject:|milter.*(error|fail)' "$work/maillog" || true);" \
	"delivered to smtp-sink: $(grep -c 'status=sent' "$work/maillog" || true)"
