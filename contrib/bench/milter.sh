#!/bin/sh
# milter.sh — the milter benchmarks of docs/benchmarks.md (section Milter) in one go, on this machine,
# loopback only:
#   1. milter_load against postwarden-milter, against OpenDKIM (verify) chained with OpenDMARC,
#      and against rspamd in milter mode (SPF, DKIM, DMARC only: rspamd-milter.conf), all three
#      Debian packages, same corpus, same DNS server, inet and unix sockets;
#   2. one session inet vs unix (the Nagle question);
#   3. postwarden-milter's RSS per concurrent session;
#   4. a private Postfix driven by smtp-source: alone, with postwarden-milter, with OpenDKIM +
#      OpenDMARC, with rspamd; one session inet vs unix, also in alternating rounds (the ratio
#      within each round).
# Every server is started here (redis-server, the zone server on 127.x.y.z:53, the milters,
# smtp-sink, Postfix in a private mount namespace) and stopped by its PID or its own stop command.
#
#   contrib/bench/milter.sh [SECONDS] [RUNS]    defaults: 10 s per measurement, 3 runs (median)
#   MILTER_BEFORE=/path/to/postwarden-milter contrib/bench/milter.sh ...
#       also measures that binary (e.g. one built before a change) in the one-session rows.
#   MILTER_ONLY=compare contrib/bench/milter.sh ...
#       only part 1 and the one-session rows of part 2 (no RSS, no Postfix).
set -eu
cd "$(dirname "$0")/../.."
seconds=${1:-10}
runs=${2:-3}
top=$PWD
py=/usr/bin/python3 # Debian's, which has python3-dkim and python3-nacl
contrib/deps.sh opendkim opendmarc redis-tools rspamd
build=$top/build-bench-release # not build-bench: run.sh builds that one RelWithDebInfo
log=$(mktemp /tmp/postwarden-milterbench-build.XXXXXX)
if ! { cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DPOSTWARDEN_BENCH=ON &&
	cmake --build "$build" -j "$(nproc)" --target postwarden-milter milter_load null_milter; } >"$log" 2>&1; then
	cat "$log" >&2
	exit 1
fi
rm -f "$log"
load=$build/contrib/bench/milter_load
work=$(mktemp -d /tmp/postwarden-milterbench.XXXXXX)
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
# in_ns (lib.sh) gives OpenDMARC and Postfix our resolv.conf.

echo "== corpus (python3-dkim) and services"
$py contrib/bench/milter_corpus.py "$work/corpus" --messages 200 --domains 10
start_redis
$py contrib/bench/dns53.py "$work/corpus/zone" "$work/dnsaddr" 2>"$work/dns.log" &
pids="$pids $!"
wait_file "$work/dnsaddr"
dns=$(cat "$work/dnsaddr")
printf 'nameserver %s\noptions timeout:2 attempts:1\n' "$dns" >"$work/resolv.conf"

# postwarden-milter: one process on inet, one on a unix socket (mode 0666: Postfix' smtpd is not
# root); 127.0.0.1 (smtp-source, Postfix) is not a trusted network here, so every message is
# verified as inbound mail.
pw_conf() {
	cat <<CONF
[redis]
address = 127.0.0.1:$redis_port
[policyd]
trusted_networks = 192.0.2.255/32
[milter]
listen = $1
authserv_id = bench.test
$(case $1 in unix:*) echo "socket_mode = 0666" ;; esac)
[dns]
nameservers = $dns:53
CONF
}
start_pw() { # NAME BINARY LISTEN
	pw_conf "$3" >"$work/$1.conf"
	"$2" -f -c "$work/$1.conf" >"$work/$1.log" 2>&1 &
	pids="$pids $!"
	eval "${1}_pid=$!"
}
pw_port=$(free_port)
start_pw pw_inet "$build/milter/postwarden-milter" "inet:$pw_port@127.0.0.1"
start_pw pw_unix "$build/milter/postwarden-milter" "unix:$work/pw.sock"
wait_port "$pw_port"
wait_file "$work/pw.sock"
# A milter that does no work (null_milter.cpp): Postfix's and libmilter's own share.
(umask 0 && exec "$build/contrib/bench/null_milter" "unix:$work/null.sock") >"$work/null.log" 2>&1 &
pids="$pids $!"
wait_file "$work/null.sock"
if [ -n "${MILTER_BEFORE:-}" ]; then
	before_port=$(free_port)
	start_pw pw_before "$MILTER_BEFORE" "inet:$before_port@127.0.0.1"
	wait_port "$before_port"
fi

# OpenDKIM (verify only) and OpenDMARC, each on inet and on unix sockets, with their own
# configuration here. OpenDMARC reads the private resolv.conf and validates SPF itself (postwarden
# does too); it trusts OpenDKIM's Authentication-Results (same authserv-id). OpenDKIM's libunbound
# refuses loopback servers and answers .test itself unless given a ResolverConfiguration file,
# and OpenDKIM re-reads that file for every message, in every thread: with two sessions or more
# it dies ("fatal flex scanner internal error", unbound's parser is not thread-safe). So OpenDKIM
# reads the keys from TestDNSData, the same records without any DNS round trip: a head start
# for OpenDKIM, which only makes the comparison stricter for postwarden (docs/benchmarks.md).
awk '$2 == "TXT" && $1 ~ /_domainkey/ { name = $1; $1 = ""; $2 = ""; sub(/^ +"/, ""); sub(/"$/, ""); print name " " $0 }' \
	"$work/corpus/zone" >"$work/dkim-keys"
start_opendkim() { # NAME SOCKET
	cat >"$work/$1.conf" <<CONF
Mode v
Socket $2
AuthservID bench.test
TestDNSData $work/dkim-keys
PidFile $work/$1.pid
Syslog no
SoftwareHeader no
UMask 000
CONF
	in_ns opendkim -f -x "$work/$1.conf" >"$work/$1.log" 2>&1 &
	pids="$pids $!"
}
start_opendmarc() { # NAME SOCKET
	cat >"$work/$1.conf" <<CONF
Socket $2
AuthservID bench.test
TrustedAuthservIDs bench.test
SPFSelfValidate true
RejectFailures true
PublicSuffixList /usr/share/publicsuffix/public_suffix_list.dat
PidFile $work/$1.pid
Syslog false
FailureReports false
UMask 000
CONF
	in_ns opendmarc -f -c "$work/$1.conf" >"$work/$1.log" 2>&1 &
	pids="$pids $!"
}
dkim_port=$(free_port)
dmarc_port=$(free_port)
start_opendkim dkim_inet "inet:$dkim_port@127.0.0.1"
start_opendkim dkim_unix "local:$work/dkim.sock"
start_opendmarc dmarc_inet "inet:$dmarc_port@127.0.0.1"
start_opendmarc dmarc_unix "local:$work/dmarc.sock"
wait_port "$dkim_port"
wait_port "$dmarc_port"
wait_file "$work/dkim.sock"
wait_file "$work/dmarc.sock"

# rspamd 3.4 in milter mode (rspamd_proxy, self_scan), as the _rspamd user, with its pid, log,
# caches and sockets here; the configuration is a whole one of its own (rspamd-milter.conf: only
# SPF, DKIM, DMARC and Authentication-Results, nothing that calls out), DNS at dns53.py directly.
# One proxy process per core, each one event loop. Its start compiles the TLD list with
# hyperscan: 15-40 s here, so it gets a longer wait than the others.
rspamd_port=$(free_port)
mkdir -p "$work/rspamd/db"
echo "count = $(nproc);" >"$work/rspamd/workers.inc"
chown -R _rspamd:_rspamd "$work/rspamd"
rspamd -f -u _rspamd -g _rspamd -c "$top/contrib/bench/rspamd-milter.conf" --var "LOCAL_CONFDIR=$work/rspamd" \
	--var "BENCH_WORK=$work" --var "BENCH_DNS=$dns" --var "BENCH_PORT=$rspamd_port" >"$work/rspamd.out" 2>&1 &
rspamd_pid=$!
pids="$pids $rspamd_pid"
i=0
until [ "$(pgrep -c -P "$rspamd_pid" -f rspamd_proxy)" -ge "$(nproc)" ]; do
	i=$((i + 1))
	if [ $i -gt 1800 ] || ! kill -0 "$rspamd_pid" 2>/dev/null; then
		echo "rspamd did not start:" >&2
		cat "$work/rspamd.out" "$work/rspamd/rspamd.log" >&2
		exit 1
	fi
	sleep 0.1
done
wait_port "$rspamd_port"
wait_file "$work/rspamd.sock"

pw_inet="inet:$pw_port@127.0.0.1"
pw_unix="unix:$work/pw.sock"
chain_inet="--milter inet:$dkim_port@127.0.0.1 --milter inet:$dmarc_port@127.0.0.1"
chain_unix="--milter unix:$work/dkim.sock --milter unix:$work/dmarc.sock"
rspamd_inet="inet:$rspamd_port@127.0.0.1"
rspamd_unix="unix:$work/rspamd.sock"

run_load() { # SESSIONS MILTER-OPTIONS...
	s=$1
	shift
	"$load" --corpus "$work/corpus" --sessions "$s" --seconds "$seconds" "$@"
}
# median of $runs runs of one measurement, by messages/s
median() {
	for r in $(seq "$runs"); do run_load "$@"; done | sort -t= -k5 -n |
		awk -v n="$runs" '{ line[NR] = $0 } END { print line[int((n + 1) / 2)] }'
}
field() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
summary=$work/summary
row() { # LABEL RESULT-LINE
	printf '%-44s %10s %9s %9s %9s   %s\n' "$1" "$(field mps "$2")" "$(field p50_ms "$2")" \
		"$(field p99_ms "$2")" "$(field max_ms "$2")" \
		"acc=$(field accepted "$2") rej=$(field rejected "$2") tmp=$(field tempfailed "$2") err=$(field errors "$2") hdr+=$(field headers_added "$2")" | tee -a "$summary"
}

# Every milter must pass the corpus before anything is measured.
for m in "--milter $pw_inet" "$chain_inet" "--milter $rspamd_inet"; do
	# shellcheck disable=SC2086
	"$load" --corpus "$work/corpus" --sessions 1 --seconds 1 --verbose $m 2>"$work/check.log" >/dev/null
	if ! grep -q 'dkim=pass' "$work/check.log" || ! grep -qi 'dmarc=pass' "$work/check.log"; then
		echo "milter check failed for $m:" >&2
		cat "$work/check.log" >&2
		exit 1
	fi
	# the Authentication-Results of the first message, continuation lines included
	awk '/^-- verdict/ { exit } /^[Aa]uthentication-[Rr]esults:/ { p = 1; print; next } /^[ \t]/ && p { print; next } { p = 0 }' "$work/check.log"
done

echo "== machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg); seconds=$seconds runs=$runs (median)"
: >"$summary"
printf '%-44s %10s %9s %9s %9s\n' "milter_load (corpus: 200 msgs, rsa+ed25519)" "msgs/s" "p50 ms" "p99 ms" "max ms" | tee -a "$summary"
for s in 1 8 32; do
	# shellcheck disable=SC2086
	row "postwarden-milter      unix  sessions=$s" "$(median $s --milter $pw_unix)"
	# shellcheck disable=SC2086
	row "opendkim+opendmarc     unix  sessions=$s" "$(median $s $chain_unix)"
	row "rspamd (milter mode)   unix  sessions=$s" "$(median "$s" --milter "$rspamd_unix")"
	row "null milter (no work)  unix  sessions=$s" "$(median "$s" --milter "unix:$work/null.sock")"
done
for s in 1 8 32; do
	# shellcheck disable=SC2086
	row "postwarden-milter      inet  sessions=$s" "$(median $s --milter $pw_inet)"
	# shellcheck disable=SC2086
	row "opendkim+opendmarc     inet  sessions=$s" "$(median $s $chain_inet)"
	row "rspamd (milter mode)   inet  sessions=$s" "$(median "$s" --milter "$rspamd_inet")"
done
echo "== one session, Nagle on in the client as in Postfix: --postfix-writes" | tee -a "$summary"
row "postwarden-milter      unix  postfix-writes" "$(median 1 --milter "$pw_unix" --postfix-writes)"
row "postwarden-milter      inet  postfix-writes" "$(median 1 --milter "$pw_inet" --postfix-writes)"
# shellcheck disable=SC2086
row "opendkim+opendmarc     unix  postfix-writes" "$(median 1 $chain_unix --postfix-writes)"
# shellcheck disable=SC2086
row "opendkim+opendmarc     inet  postfix-writes" "$(median 1 $chain_inet --postfix-writes)"
row "rspamd (milter mode)   unix  postfix-writes" "$(median 1 --milter "$rspamd_unix" --postfix-writes)"
row "rspamd (milter mode)   inet  postfix-writes" "$(median 1 --milter "$rspamd_inet" --postfix-writes)"
if [ -n "${MILTER_BEFORE:-}" ]; then
	row "MILTER_BEFORE          inet  sessions=1" "$(median 1 --milter "inet:$before_port@127.0.0.1")"
	row "MILTER_BEFORE          inet  postfix-writes" "$(median 1 --milter "inet:$before_port@127.0.0.1" --postfix-writes)"
fi
# rspamd did the work for every message it was sent, not only for the sample checked above: its
# log has one line per message with the symbols it found.
rspamd_verified() {
	grep rspamd_task_write_log "$work/rspamd/rspamd.log" | awk '
		{ n++ } /R_SPF_ALLOW/ && /R_DKIM_ALLOW/ && /DMARC_POLICY_ALLOW/ { ok++ }
		END { printf "rspamd log: %d messages scanned, %d with R_SPF_ALLOW, R_DKIM_ALLOW and DMARC_POLICY_ALLOW%s\n",
			n, ok, (n == 0 || ok < n) ? "  NOT ALL VERIFIED" : "" }'
	# and it talks to nothing but loopback: the peers of its sockets (its DNS sockets stay open)
	ours="pid=($(pgrep -P "$rspamd_pid" | tr '\n' '|')$rspamd_pid),"
	ss -tunapH | awk -v ours="$ours" '$0 ~ ours && $6 !~ /:\*$/ { print $1 " " $6 }' | sort | uniq -c |
		awk '{ s = s " " $2 " " $3 " (" $1 ")"; if ($3 !~ /^127\./) bad = 1 }
			END { print "rspamd inet peers (ss):" (s == "" ? " none" : s) (bad ? "  NOT LOOPBACK" : "") }'
}
rspamd_verified | tee -a "$summary"
if [ "${MILTER_ONLY:-}" = compare ]; then
	echo
	echo "== summary ($(date -u +%Y-%m-%dT%H:%MZ), load $(cut -d' ' -f1-3 /proc/loadavg))"
	cat "$summary"
	exit 0
fi

echo "== postwarden-milter RSS per concurrent session (VmRSS during milter_load over unix)" | tee -a "$summary"
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
idle=$(rss "$pw_unix_pid")
printf '%-44s %8s kB\n' "idle" "$idle" | tee -a "$summary"
for s in 1 8 64 256; do
	run_load "$s" --milter "$pw_unix" >/dev/null &
	lp=$!
	sleep "$(awk -v t="$seconds" 'BEGIN { print (t > 4 ? t / 2 : 2) }')"
	now=$(rss "$pw_unix_pid")
	wait $lp
	printf '%-44s %8s kB  (%s kB per session over idle)\n' "sessions=$s" "$now" \
		"$(awk -v a="$now" -v b="$idle" -v s="$s" 'BEGIN { printf "%.0f", (a - b) / s }')" | tee -a "$summary"
done

# ---- Postfix + smtp-source ------------------------------------------------------------------
if ! command -v postfix >/dev/null 2>&1 || ! command -v smtp-source >/dev/null 2>&1; then
	echo "postfix or smtp-source missing: Postfix rows skipped" | tee -a "$summary"
	cat "$summary"
	exit 0
fi
sink_port=$(free_port)
smtp_port=$(free_port)
smtp-sink -u nobody "127.0.0.1:$sink_port" 1000 >"$work/sink.log" 2>&1 &
pids="$pids $!"
wait_port "$sink_port"
start_postfix "$sink_port" "$smtp_port"
# smtp-source sends one corpus message with its envelope: the largest (8 KB) or, for the
# one-session rows, also the smallest (3 KB). SPF passes for 127.0.0.1 through the zone's
# 127.0.0.0/8 entry (milter_corpus.py).
pick() { # largest|smallest -> sets msg, sender, rcpt
	f=$(cd "$work/corpus" && ls -S msg-*.eml | { [ "$1" = largest ] && head -1 || tail -1; })
	msg=$work/corpus/$f
	sender=$(awk -F'\t' -v f="$f" '$1 == f { print $4 }' "$work/corpus/manifest.tsv")
	rcpt=$(awk -F'\t' -v f="$f" '$1 == f { print $5 }' "$work/corpus/manifest.tsv")
}
use_milters() { # then warm up: a reload restarts smtpd and cleanup
	postconf -c "$postfix_dir" -e "smtpd_milters = $1" >/dev/null
	postfix -c "$postfix_dir" reload >/dev/null 2>&1
	sleep 1
	pick smallest
	smtp-source -s 4 -m 20 -f "$sender" -t "$rcpt" -F "$msg" "127.0.0.1:$smtp_port" 2>>"$work/smtp-source.log"
}
# messages/s of smtp-source: SESSIONS MESSAGES
smtp_rate() {
	postfix_drained
	t0=$(date +%s.%N)
	smtp-source -s "$1" -m "$2" -f "$sender" -t "$rcpt" -F "$msg" "127.0.0.1:$smtp_port" 2>>"$work/smtp-source.log"
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" -v n="$2" 'BEGIN { printf "%.1f", n / (b - a) }'
}
smtp_median() { for r in $(seq "$runs"); do smtp_rate "$@"; echo; done | sort -n | awk -v n="$runs" '{ l[NR] = $0 } END { print l[int((n + 1) / 2)] }'; }
smtp_row() { printf '%-44s %10s\n' "$1" "$2" | tee -a "$summary"; }
echo "== Postfix $(postconf -d -h mail_version) + smtp-source (msgs/s, whole session: connect..QUIT)" | tee -a "$summary"
many=$(awk -v t="$seconds" 'BEGIN { printf "%d", t * 100 }')
for setting in "none|" "null milter unix|unix:$work/null.sock" \
	"postwarden inet|inet:127.0.0.1:$pw_port" "postwarden unix|unix:$work/pw.sock" \
	"opendkim+opendmarc inet|inet:127.0.0.1:$dkim_port, inet:127.0.0.1:$dmarc_port" \
	"opendkim+opendmarc unix|unix:$work/dkim.sock, unix:$work/dmarc.sock" \
	"rspamd inet|inet:127.0.0.1:$rspamd_port" "rspamd unix|unix:$work/rspamd.sock"; do
	name=${setting%%|*}
	use_milters "${setting#*|}"
	# one session: bounded by the message count a slow milter manages in $seconds
	few=$(awk -v t="$seconds" 'BEGIN { printf "%d", t * 20 }')
	pick smallest
	smtp_row "postfix + $name  -s 1  3 KB msg" "$(smtp_median 1 "$few")"
	pick largest
	smtp_row "postfix + $name  -s 1  8 KB msg" "$(smtp_median 1 "$few")"
	smtp_row "postfix + $name  -s 20 8 KB msg" "$(smtp_median 20 "$many")"
done
# The target for inet: within 20 % of unix for one Postfix session. The settings above are
# measured minutes apart, and this machine's speed moves by more than that difference; here
# postwarden on unix and on inet alternate (which goes first alternates too), 2 × RUNS rounds
# per message size, 4 × as many messages as the rows above (one measurement of those moves by a
# quarter), and the ratio is taken within each round: the median, then every round's.
inet_unix_rounds() { # largest|smallest
	for r in $(seq $((2 * runs))); do
		for where in $([ $((r % 2)) = 1 ] && echo unix inet || echo inet unix); do
			if [ "$where" = unix ]; then use_milters "unix:$work/pw.sock"; else use_milters "inet:127.0.0.1:$pw_port"; fi
			pick "$1"
			rate=$(smtp_rate 1 $((4 * few)))
			if [ "$where" = unix ]; then unix_rate=$rate; else inet_rate=$rate; fi
		done
		awk -v i="$inet_rate" -v u="$unix_rate" 'BEGIN { printf "%.2f\n", i / u }'
	done | sort -n | awk '{ l[NR] = $0 } END {
		printf "%.2f  (", (l[int((NR + 1) / 2)] + l[int(NR / 2) + 1]) / 2
		for (k = 1; k <= NR; k++) printf "%s%s", l[k], (k < NR ? " " : ")")
	}'
}
smtp_row "postwarden inet / unix  -s 1  3 KB, paired" "$(inet_unix_rounds smallest)"
smtp_row "postwarden inet / unix  -s 1  8 KB, paired" "$(inet_unix_rounds largest)"
if [ -n "${MILTER_BEFORE:-}" ]; then
	use_milters "inet:127.0.0.1:$before_port"
	pick smallest
	smtp_row "postfix + MILTER_BEFORE inet  -s 1  3 KB msg" "$(smtp_median 1 "$few")"
fi
echo "postfix rejects and milter failures in maillog: $(grep -c -E 'reject:|milter.*(error|fail)' "$work/maillog" || true)" | tee -a "$summary"
rspamd_verified | tee -a "$summary"
echo
echo "== summary ($(date -u +%Y-%m-%dT%H:%MZ), load $(cut -d' ' -f1-3 /proc/loadavg))"
cat "$summary"
