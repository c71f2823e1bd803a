#!/bin/sh
# run.sh — the policy benchmarks of docs/benchmarks.md in one go, on this machine, loopback only:
# the null policy server (the ceiling), postwarden-policyd on each request mix, postgrey (when
# installed: apt-get install postgrey) on the same mix, and redis-benchmark for one Redis here.
# Every server is started here on a free port and stopped by its PID.
#
#   contrib/bench/run.sh [SECONDS] [RUNS]      defaults: 10 s per measurement, 3 runs (median)
set -eu
cd "$(dirname "$0")/../.."
seconds=${1:-10}
runs=${2:-3}
top=$PWD
contrib/deps.sh postgrey redis-tools
build=$top/build-bench
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPOSTWARDEN_BENCH=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target postwarden-policyd policy_load null_policy_server >/dev/null
work=$(mktemp -d /tmp/postwarden-bench.XXXXXX)
pids=""
cleanup() { [ -n "$pids" ] && kill $pids 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM

. contrib/bench/lib.sh
start_redis
start_dns_fixture

policyd_port=$(free_port)
cat >"$work/bench.conf" <<CONF
[redis]
address = 127.0.0.1:$redis_port
[policyd]
listen = 127.0.0.1:$policyd_port
[greylist]
delay = 1
auto_allow_clients = 0
[quota]
limits = 100000000/86400
auto_block = 0
[dns]
nameservers = $dns_server
CONF
"$build/policyd/postwarden-policyd" -f -c "$work/bench.conf" 2>/dev/null &
policyd_pid=$!
pids="$pids $!"
wait_port "$policyd_port"
redis-cli -p "$redis_port" SADD pw:block:domain bench-blocked.example >/dev/null

null_port=$(free_port)
"$build/contrib/bench/null_policy_server" "$null_port" &
pids="$pids $!"
wait_port "$null_port"

load() { "$build/contrib/bench/policy_load" --port "$1" --connections "$2" --seconds "$seconds" --mix "$3"; }
# the median of load lines, by requests/s
median_of() { sort -t= -k5 -n | awk -v n="$runs" '{ line[NR] = $0 } END { print line[int((n + 1) / 2)] }'; }
# CPU time (user + system, in clock ticks) a process has used so far
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# rps=N of a load line
rps_of() { sed 's/.* rps=\([0-9]*\).*/\1/'; }
# the median of the per-round ratios of two files of load lines, line by line: A's rps ÷ B's
ratio_median() {
	paste -d' ' "$1" "$2" | sed 's/.* rps=\([0-9]*\).* rps=\([0-9]*\).*/\1 \2/' |
		awk '{ printf "%.2f\n", $1 / $2 }' | sort -n |
		awk '{ r[NR] = $0; all = all (NR > 1 ? " " : "") $0 }
			END { m = NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2; printf "%.2f (rounds: %s)", m, all }'
}
# versus NAME PORT MIX: known triplets on policyd and MIX on PORT, measured in turn $runs times
# (64 connections), then MIX's median line, for policyd the CPU it and Redis used per request
# over MIX's runs (in µs: which of the two bounds a mix; a tick is 1/CLK_TCK s, every reply
# counts, warm-up included), and the median of the per-round ratios known ÷ MIX. The machine's
# speed moves by up to half between minutes (the same known triplet costs policyd 9.5 or 14.6 µs
# of CPU), so each ratio is taken between neighbouring measurements.
versus() {
	: >"$work/versus.known"
	: >"$work/versus.mix"
	pt=0 rt=0 total=0
	for r in $(seq "$runs"); do
		load "$policyd_port" 64 known:100 >>"$work/versus.known"
		p0=$(ticks "$policyd_pid") r0=$(ticks "$redis_pid")
		line=$(load "$2" 64 "$3")
		p1=$(ticks "$policyd_pid") r1=$(ticks "$redis_pid")
		pt=$((pt + p1 - p0)) rt=$((rt + r1 - r0))
		total=$((total + $(echo "$line" | sed 's/.*total=\([0-9]*\).*/\1/')))
		echo "$line" >>"$work/versus.mix"
	done
	cpu=""
	[ "$2" = "$policyd_port" ] && cpu=" cpu_us_per_request: $(awk -v p="$pt" -v r="$rt" -v t="$total" \
		-v hz="$(getconf CLK_TCK)" 'BEGIN { printf "policyd=%.1f redis=%.1f", p * 1e6 / hz / t, r * 1e6 / hz / t }')"
	echo "$(printf '%-8s' "$1") c=64 $(median_of <"$work/versus.mix")$cpu"
	echo "   known ÷ $1: $(ratio_median "$work/versus.known" "$work/versus.mix"), known median $(median_of <"$work/versus.known" | rps_of) req/s"
}
# the null server and known triplets at C connections, measured in turn $runs times, so that a
# slow spell of the machine (it has neighbours) falls on both sides of the ratio
paired() {
	for r in $(seq "$runs"); do
		load "$null_port" "$1" known:100 >>"$work/null.$1"
		load "$policyd_port" "$1" known:100 >>"$work/known.$1"
	done
	echo "null     c=$1  $(median_of <"$work/null.$1")"
	echo "known    c=$1  $(median_of <"$work/known.$1")"
}
# calls CMD...: how many times Redis ran these commands so far (INFO commandstats)
calls() {
	redis-cli -p "$redis_port" INFO commandstats |
		awk -F'[=,:]' -v want=" $* " '/^cmdstat_/ && index(want, " " substr($1, 9) " ") { s += $3 } END { print s + 0 }'
}
# What policyd itself sends: commandstats also counts the GET/EXPIRE a script runs inside.
commands() { calls evalsha eval smismember smembers; }
# per_request AFTER BEFORE LINE: (AFTER - BEFORE) / the total= of a load line
per_request() { awk -v a="$1" -v b="$2" -v t="$(echo "$3" | sed 's/.*total=\([0-9]*\).*/\1/')" 'BEGIN { printf "%.3f", (a - b) / t }'; }

"$build/contrib/bench/policy_load" --port "$policyd_port" --connections 1 --seconds 0.5 --prepass 1.2 >/dev/null
echo "== machine: $(nproc) cores, $(uname -r); seconds=$seconds runs=$runs (median)"
for c in 8 64; do paired $c; done
before=$(commands)
line=$(load "$policyd_port" 64 known:100)
echo "redis round trips (commands policyd sends) per known-triplet request at c=64: $(per_request "$(commands)" "$before" "$line")"
redis-cli -p "$redis_port" INFO commandstats | grep -E 'cmdstat_(evalsha|smismember|smembers)'
versus new "$policyd_port" new:100
versus new-client "$policyd_port" new-client:100
versus auth "$policyd_port" auth:100
versus submission "$policyd_port" submission:100
# A submission's requests (RCPT, then END-OF-MESSAGE): transactions and script calls policyd
# sends Redis per request (MULTI ... EXEC is one write, one reply).
e0=$(calls exec) s0=$(calls evalsha eval)
line=$(load "$policyd_port" 64 submission:100)
echo "submission at c=64, per request: transactions $(per_request "$(calls exec)" "$e0" "$line"), scripts $(per_request "$(calls evalsha eval)" "$s0" "$line")"
versus blocked "$policyd_port" blocked:100
echo "== redis-benchmark (the ceiling of one Redis here)"
redis-benchmark -p "$redis_port" -q -n 200000 -c 64 -t ping,get,evalsha 2>/dev/null | tr '\r' '\n' | grep -v '^$' | tail -3
redis-benchmark -p "$redis_port" -q -n 200000 -c 64 -P 16 -t ping 2>/dev/null | tr '\r' '\n' | grep -v '^$' | tail -1

if command -v postgrey >/dev/null 2>&1; then
	pg_port=$(free_port)
	mkdir -p "$work/postgrey"
	postgrey --inet="127.0.0.1:$pg_port" --dbdir="$work/postgrey" --delay=1 --pidfile="$work/postgrey.pid" \
		--user="$(id -un)" --group="$(id -gn)" >"$work/postgrey.log" 2>&1 &
	pids="$pids $!"
	wait_port "$pg_port"
	"$build/contrib/bench/policy_load" --port "$pg_port" --connections 1 --seconds 0.5 --prepass 1.2 >/dev/null
	versus postgrey "$pg_port" known:100
else
	echo "postgrey: not installed (apt-get install postgrey), skipped"
fi

echo "== memory"
echo "policyd $(python3 contrib/bench/idle_rss.py "$policyd_port" "$policyd_pid" 2000)"
