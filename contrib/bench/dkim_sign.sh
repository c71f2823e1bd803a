#!/bin/sh
# dkim_sign.sh — outbound DKIM signing behind Postfix (docs/benchmarks.md, "DKIM signing"):
# postwarden-milter against OpenDKIM in signing mode (Debian's opendkim), on the same messages
# and the same keys, RSA-2048, Ed25519 and both, side by side with Postfix alone and with a null
# milter, in rounds whose order rotates. Loopback and unix sockets only.
#
#   contrib/bench/dkim_sign.sh [ROUNDS] [MESSAGES] [SESSIONS]   defaults: 3 2000 10
#   BUILD=/path/to/build contrib/bench/dkim_sign.sh ...   (default build-bench-release)
#   PERF=1 contrib/bench/dkim_sign.sh ...   then perf record of postwarden-milter signing with
#       both keys: where its CPU time goes, by shared object and symbol
#
# The mail is outbound for both signers: smtp-source connects from 127.0.0.1, which is in
# postwarden's [policyd] trusted_networks and OpenDKIM's InternalHosts. The message (about 4 KB,
# From: bench@sign.example) is the same for every configuration. Keys are made once with
# `postwarden dkim keygen` and given to both. postwarden's active selectors are switched with
# redis-cli between configurations (no restart: the selector cache sees the edit). OpenDKIM signs
# with one key per instance (its SignatureAlgorithm is global), so "both" chains two instances,
# as operators do. Both log nothing per message ([log] level = warning; Syslog no). OpenDKIM is
# told RequireSafeKeys false: the keys are under /tmp, which it refuses at start otherwise.
#
# Each measurement: smtp-source -s SESSIONS -m MESSAGES (rate = MESSAGES / its wall time), then
# wait until Postfix delivered everything to smtp-sink; CPU seconds over that window from /proc:
# the milter processes, Postfix (the master, its live and reaped children), the machine. After
# each measurement one delivered message is checked with dkimpy (the signatures expected, all
# passing), and the sink's files are removed.
set -eu
cd "$(dirname "$0")/../.."
rounds=${1:-3}
count=${2:-2000}
sessions=${3:-10}
top=$PWD
py=/usr/bin/python3 # Debian's, which has python3-dkim
build=${BUILD:-$top/build-bench-release}
contrib/deps.sh opendkim redis-tools
log=$(mktemp /tmp/postwarden-dkimbench-build.XXXXXX)
if ! { { [ -f "$build/CMakeCache.txt" ] ||
	cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DPOSTWARDEN_BENCH=ON; } &&
	cmake --build "$build" -j "$(nproc)" --target postwarden-milter postwarden null_milter; } >"$log" 2>&1; then
	cat "$log" >&2
	exit 1
fi
rm -f "$log"
work=$(mktemp -d /tmp/postwarden-dkimbench.XXXXXX)
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
printf 'nameserver 127.0.0.1\n' >"$work/resolv.conf" # nothing is looked up

# Keys, owned by root: both signers run as root here.
start_redis
cat >"$work/postwarden.conf" <<CONF
[redis]
address = 127.0.0.1:$redis_port
[milter]
listen = unix:$work/pw.sock
socket_mode = 0666
authserv_id = bench.test
[log]
level = warning
[dkim]
key_dir = $work/keys
CONF
sed 's/^\[milter\]$/[milter]\nuser = root/' "$work/postwarden.conf" >"$work/cli.conf"
cli="$build/admin/postwarden -c $work/cli.conf"
$cli --json dkim keygen sign.example --type rsa --selector rsa >"$work/rsa.json"
$cli --json dkim keygen sign.example --type ed25519 --selector ed >"$work/ed.json"
$py -c 'import json,sys; [print(k["name"], k["txt"]) for f in sys.argv[1:] for k in json.load(open(f))["keys"]]' \
	"$work/rsa.json" "$work/ed.json" >"$work/records"

"$build/milter/postwarden-milter" -c "$work/postwarden.conf" -f >"$work/pw.log" 2>&1 &
pw_pid=$!
pids="$pids $pw_pid"
(umask 0 && exec "$build/contrib/bench/null_milter" "unix:$work/null.sock") >"$work/null.log" 2>&1 &
null_pid=$!
pids="$pids $null_pid"

start_opendkim() { # NAME SELECTOR ALGORITHM
	cat >"$work/odk-$1.conf" <<CONF
Mode s
Socket local:$work/odk-$1.sock
Domain sign.example
Selector $2
KeyFile $work/keys/sign.example/$2.key
SignatureAlgorithm $3
Canonicalization relaxed/relaxed
OversignHeaders From,To,Cc,Subject,Date,Reply-To
InternalHosts 127.0.0.1
PidFile $work/odk-$1.pid
Syslog no
SoftwareHeader no
UMask 000
RequireSafeKeys false
CONF
	opendkim -f -x "$work/odk-$1.conf" >"$work/odk-$1.log" 2>&1 &
	pids="$pids $!"
	eval "odk_$1=$!"
}
start_opendkim rsa rsa rsa-sha256
start_opendkim ed ed ed25519-sha256
for s in pw null odk-rsa odk-ed; do wait_file "$work/$s.sock"; done

mkdir "$work/sink"
chown nobody "$work/sink"
sink_port=$(free_port)
smtp_port=$(free_port)
(cd "$work/sink" && exec smtp-sink -u nobody -d "%M." "127.0.0.1:$sink_port" 1000) >"$work/sink.log" 2>&1 &
sink_pid=$!
pids="$pids $sink_pid"
wait_port "$sink_port"
start_postfix "$sink_port" "$smtp_port"
# rcpt.example is relayed; mail from 127.0.0.1 (mynetworks) is outbound.
wait_file "$work/postfix-queue/pid/master.pid"
master_pid=$(tr -d ' \n' <"$work/postfix-queue/pid/master.pid")

$py - "$work/message" <<'PY'
import sys, email.utils
lines = ["From: Bench Sender <bench@sign.example>", "To: Someone <someone@rcpt.example>",
         "Cc: other@rcpt.example", "Subject: a benchmark message with an ordinary subject line",
         "Date: " + email.utils.formatdate(), "Message-ID: <bench.1@sign.example>",
         "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
         "Content-Transfer-Encoding: 8bit", ""]
para = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
        "incididunt ut labore et dolore magna aliqua.  Ut enim ad minim veniam,\n")
body = (para * 28)[:3800]
open(sys.argv[1], "w").write("\r\n".join(lines) + "\r\n" + body.replace("\n", "\r\n"))
PY

echo "== dkim_sign.sh: Postfix $(postconf -d -h mail_version), $(opendkim -V | head -1), $(nproc) cores," \
	"load $(cut -d' ' -f1-3 /proc/loadavg), $rounds rounds, -s $sessions -m $count, message $(wc -c <"$work/message") bytes, $(date -u +%Y-%m-%dT%H:%MZ)"
$py - "$work" "$postfix_dir" "$smtp_port" "$master_pid" "$redis_port" "$rounds" "$count" "$sessions" \
	"none||||" \
	"null|unix:$work/null.sock|$null_pid||" \
	"pw-rsa|unix:$work/pw.sock|$pw_pid|rsa|rsa" \
	"odk-rsa|unix:$work/odk-rsa.sock|$odk_rsa||rsa" \
	"pw-ed|unix:$work/pw.sock|$pw_pid|ed|ed" \
	"odk-ed|unix:$work/odk-ed.sock|$odk_ed||ed" \
	"pw-both|unix:$work/pw.sock|$pw_pid|rsa ed|rsa ed" \
	"odk-both|unix:$work/odk-rsa.sock, unix:$work/odk-ed.sock|$odk_rsa $odk_ed||rsa ed" <<'PY'
import glob, os, signal, statistics, subprocess, sys, time
import dkim

work, pfdir, port, master, redis_port = sys.argv[1:6]
rounds, count, sessions = int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
configs = [a.split("|") for a in sys.argv[9:]]  # name, milters, pids, pw selectors, expected
master = int(master)
queue = os.path.join(work, "postfix-queue")
tick = os.sysconf("SC_CLK_TCK")
records = dict(l.split(" ", 1) for l in open(os.path.join(work, "records")).read().splitlines())
source_log = open(os.path.join(work, "smtp-source.log"), "a")

def stat(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    f = s[s.rindex(")") + 2:].split()
    return (int(f[11]) + int(f[12])) / tick, (int(f[13]) + int(f[14])) / tick

def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []

def postfix_cpu():
    own, reaped = stat(master)
    return own + reaped + sum(s[0] for s in map(stat, children(master)) if s)

def cpu(pids):
    return sum((stat(p) or (0.0, 0.0))[0] for p in pids)

def machine_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / tick

def drain():
    deadline = time.time() + 300
    while any(files for d in ("maildrop", "incoming", "active", "deferred", "hold")
              for _, _, files in os.walk(os.path.join(queue, d))):
        if time.time() > deadline:
            sys.exit("the queue did not drain")
        time.sleep(0.05)

def smtp_source(s, n):
    r = subprocess.run(["smtp-source", "-s", str(s), "-m", str(n), "-f", "bench@sign.example",
                        "-t", "someone@rcpt.example", "-F", os.path.join(work, "message"),
                        f"127.0.0.1:{port}"], stderr=source_log)
    if r.returncode != 0:
        sys.exit(f"smtp-source exited {r.returncode}")

def clear_sink():
    for p in glob.glob(os.path.join(work, "sink", "*")):
        os.unlink(p)

def redis(*args):
    subprocess.run(["redis-cli", "-p", redis_port] + list(args), check=True,
                    stdout=subprocess.DEVNULL)

def use(milters, selectors):
    redis("DEL", "pw:dkim:selectors:sign.example")
    if selectors:
        redis("SADD", "pw:dkim:selectors:sign.example", *selectors.split())
    subprocess.run(["postconf", "-c", pfdir, "-e", f"smtpd_milters = {milters}"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["postfix", "-c", pfdir, "reload"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    time.sleep(1)
    smtp_source(4, 20)  # warm-up: a reload restarts smtpd and cleanup
    drain()
    clear_sink()

def check_signed(expected):
    files = glob.glob(os.path.join(work, "sink", "*"))
    if not files:
        sys.exit("nothing reached smtp-sink")
    lines = open(files[0], "rb").read().replace(b"\r\n", b"\n").split(b"\n")
    envelope = (b"X-Client-Addr:", b"X-Client-Proto:", b"X-Helo-Args:", b"X-Mail-Args:",
                b"X-Rcpt-Args:")  # smtp-sink's own lines before the message
    while lines and lines[0].startswith(envelope):
        lines.pop(0)
    msg = b"\r\n".join(lines)
    d = dkim.DKIM(msg)
    sigs = [v for n, v in d.headers if n.lower() == b"dkim-signature"]
    got = sorted(dkim.util.parse_tag_value(b"".join(v.split()))[b"s"].decode() for v in sigs)
    if got != sorted(expected.split()):
        sys.exit(f"signed with {got}, expected {expected.split()}")
    dns = lambda name, timeout=5: records.get(name.decode().rstrip("."), "").encode()
    for i in range(len(sigs)):
        if not dkim.DKIM(msg).verify(idx=i, dnsfunc=dns):
            sys.exit(f"signature {i} does not verify")

def measure(pids):
    drain()
    p0, m0, b0 = postfix_cpu(), cpu(pids), machine_busy()
    t0 = time.monotonic()
    smtp_source(sessions, count)
    wall = time.monotonic() - t0
    drain()
    p1, m1, b1 = postfix_cpu(), cpu(pids), machine_busy()
    return dict(rate=count / wall, postfix=p1 - p0, milter=m1 - m0, machine=b1 - b0)

results = {}
order = list(range(len(configs)))
for r in range(rounds):
    for i in order[r % len(order):] + order[:r % len(order)]:
        name, milters, pidlist, selectors, expected = configs[i]
        pids = [int(p) for p in pidlist.split()]
        use(milters, selectors)
        x = measure(pids)
        check_signed(expected)
        clear_sink()
        results.setdefault(name, []).append(x)
        ms = lambda v: 1000 * v / count
        print(f"round {r + 1} {name:8s} {x['rate']:7.1f} msgs/s  CPU ms/msg: milter "
              f"{ms(x['milter']):.3f} postfix {ms(x['postfix']):.3f} machine {ms(x['machine']):.3f}"
              f"  load {open('/proc/loadavg').read().split()[0]}", flush=True)

print(f"\n== medians over {rounds} rounds (min-max); CPU ms per message")
base = statistics.median(x["rate"] for x in results["none"])
for name, *_ in configs:
    xs = results[name]
    rates = [x["rate"] for x in xs]
    med = lambda k: 1000 * statistics.median(x[k] for x in xs) / count
    print(f"{name:8s} {statistics.median(rates):7.1f} msgs/s ({min(rates):.1f}-{max(rates):.1f})"
          f" {100 * statistics.median(rates) / base:5.1f} %  milter {med('milter'):.3f}"
          f"  postfix {med('postfix'):.3f}  machine {med('machine'):.3f}")

if os.environ.get("PERF"):
    name, milters, pidlist, selectors, expected = [c for c in configs if c[0] == "pw-both"][0]
    use(milters, selectors)
    data = os.path.join(work, "perf.data")
    perf = subprocess.Popen(["perf", "record", "-q", "-F", "999", "-g", "-p", pidlist, "-o", data],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    measure([int(pidlist)])
    perf.send_signal(signal.SIGINT)
    perf.wait()
    for sort in ("dso", "dso,symbol"):
        rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                              "--sort", sort, "-g", "none", "--percent-limit", "1.5"],
                             capture_output=True, text=True).stdout
        print(f"\n== perf: postwarden-milter signing with both keys, by {sort}")
        print("\n".join(l for l in rep.splitlines() if l.strip() and not l.startswith("#")))
PY
echo "postfix rejects and milter failures in maillog: $(grep -c -E 'reject:|milter.*(error|fail)' "$work/maillog" || true);" \
	"delivered to smtp-sink: $(grep -c 'status=sent' "$work/maillog" || true)"
