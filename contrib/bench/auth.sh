#!/bin/sh
# auth.sh — the auth-policy benchmark of docs/benchmarks.md ("Login protection"), loopback only:
# postwarden-policyd's [auth] server on each request mix at 64 keep-alive connections, side by
# side in each round with a constant-answer server on the same stack (null_auth_server, Beast)
# as the ceiling, then p99 at 8 connections. Every server is started here on a free port and
# stopped by its PID.
#
#   contrib/bench/auth.sh [SECONDS] [RUNS]      defaults: 10 s per measurement, 3 runs (median)
set -eu
cd "$(dirname "$0")/../.."
seconds=${1:-10}
runs=${2:-3}
top=$PWD
build=$top/build-bench
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPOSTWARDEN_BENCH=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target postwarden-policyd auth_load null_auth_server >/dev/null
work=$(mktemp -d /tmp/postwarden-bench.XXXXXX)
pids=""
cleanup() { [ -n "$pids" ] && kill $pids 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM

. contrib/bench/lib.sh
start_redis

policyd_port=$(free_port)
auth_port=$(free_port)
cat >"$work/bench.conf" <<CONF
[redis]
address = 127.0.0.1:$redis_port
[policyd]
listen = 127.0.0.1:$policyd_port
[auth]
listen = 127.0.0.1:$auth_port
api_key = bench-key
CONF
"$build/policyd/postwarden-policyd" -f -c "$work/bench.conf" 2>/dev/null &
pids="$pids $!"
wait_port "$auth_port"

null_port=$(free_port)
"$build/contrib/bench/null_auth_server" "$null_port" &
pids="$pids $!"
wait_port "$null_port"

load() {
	"$build/contrib/bench/auth_load" --port "$1" --connections "$2" --seconds "$seconds" \
		--api-key bench-key --mix "$3"
}
median_of() { sort -t= -k5 -n | awk -v n="$runs" '{ line[NR] = $0 } END { print line[int((n + 1) / 2)] }'; }

echo "machine: $(nproc) CPU(s), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), load average $(cut -d' ' -f1-3 /proc/loadavg)"
for mix in allow:100 fail:100 success:100 allow:67,success:30,fail:3; do
	: >"$work/policyd" ; : >"$work/null"
	for _ in $(seq "$runs"); do
		load "$auth_port" 64 "$mix" >>"$work/policyd"
		load "$null_port" 64 "$mix" >>"$work/null"
	done
	echo "mix $mix, 64 connections"
	echo "  policyd  $(median_of <"$work/policyd")"
	echo "  ceiling  $(median_of <"$work/null")"
done
for mix in allow:100 allow:67,success:30,fail:3; do
	: >"$work/policyd" ; : >"$work/null"
	for _ in $(seq "$runs"); do
		load "$auth_port" 8 "$mix" >>"$work/policyd"
		load "$null_port" 8 "$mix" >>"$work/null"
	done
	echo "mix $mix, 8 connections"
	echo "  policyd  $(median_of <"$work/policyd")"
	echo "  ceiling  $(median_of <"$work/null")"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
