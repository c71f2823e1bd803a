#!/bin/sh
# instructions.sh — instructions policyd executes per request, counted by callgrind: a figure
# that does not move with the machine's load (unlike requests/s), so it is the one to compare
# before and after a change, and against the baseline recorded in instructions.baseline.
#
#   contrib/bench/instructions.sh [MIX...]        default: known auth blocked new new-client
#   contrib/bench/instructions.sh --check         fail when a mix costs 10 % more than the baseline
#
# Method: policyd runs under valgrind --tool=callgrind; after a warm-up (the prepass and one
# second of the mix) its counters are zeroed, policy_load runs the mix for 5 s with 16
# connections, and the counters are dumped. Instructions of every policyd thread / requests.
set -eu
cd "$(dirname "$0")/../.."
top=$PWD
check=no
[ "${1:-}" = --check ] && check=yes && shift
mixes=${*:-known auth blocked new new-client}
command -v valgrind >/dev/null || { echo "instructions.sh: valgrind is needed" >&2; exit 1; }
build=${POSTWARDEN_BENCH_BUILD:-$top/build-bench}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPOSTWARDEN_BENCH=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target postwarden-policyd policy_load >/dev/null
work=$(mktemp -d /tmp/postwarden-instr.XXXXXX)
pids=""
cleanup() { [ -n "$pids" ] && kill $pids 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM

. contrib/bench/lib.sh
start_redis
start_dns_fixture

status=0
for mix in $mixes; do
	redis-cli -p "$redis_port" FLUSHALL >/dev/null
	redis-cli -p "$redis_port" SADD pw:block:domain bench-blocked.example >/dev/null
	port=$(free_port)
	cat >"$work/policyd.conf" <<CONF
[redis]
address = 127.0.0.1:$redis_port
[policyd]
listen = 127.0.0.1:$port
[greylist]
delay = 1
auto_allow_clients = 0
[quota]
limits = 100000000/86400
auto_block = 0
[dns]
nameservers = $dns_server
CONF
	valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
		"$build/policyd/postwarden-policyd" -f -c "$work/policyd.conf" 2>/dev/null &
	pid=$!
	wait_port "$port"
	"$build/contrib/bench/policy_load" --port "$port" --connections 1 --seconds 0.5 --prepass 1.5 >/dev/null
	"$build/contrib/bench/policy_load" --port "$port" --connections 16 --seconds 1 --mix "$mix:100" >/dev/null
	callgrind_control -z "$pid" >/dev/null 2>&1
	line=$("$build/contrib/bench/policy_load" --port "$port" --connections 16 --seconds 5 --mix "$mix:100")
	callgrind_control -d "$pid" >/dev/null 2>&1
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	total=$(echo "$line" | sed 's/.*total=\([0-9]*\).*/\1/')
	dump=$(ls -t "$work"/cg.out.* | head -1)
	ir=$(sed -n 's/^summary: //p' "$dump")
	per=$((ir / total))
	echo "$mix instructions/request=$per (requests=$total)"
	rm -f "$work"/cg.out*
	base=$(sed -n "s/^$mix //p" contrib/bench/instructions.baseline 2>/dev/null || true)
	[ "$check" = yes ] && [ -n "$base" ] || continue
	if [ "$per" -gt $((base * 110 / 100)) ]; then
		echo "  regression: more than 10 % above the baseline, $base" >&2
		status=1
	elif [ "$per" -lt $((base * 90 / 100)) ]; then
		echo "  more than 10 % below the baseline, $base: lower it in instructions.baseline" >&2
	fi
done
exit $status
