#!/bin/sh
# cluster.sh — policyd on one Redis and on a Redis Cluster of three masters, side by side in the
# same run, on the policy mixes of run.sh (docs/benchmarks.md, "Redis Cluster"). Loopback only:
# one redis-server, three cluster-enabled redis-server joined by `redis-cli --cluster create`,
# two postwarden-policyd (`cluster = no` and `cluster = yes`), all on free ports, stopped by PID.
#
#   contrib/bench/cluster.sh [SECONDS] [RUNS]    defaults: 10 s per measurement, 3 runs (median)
#
# Each round measures a mix on the single-Redis policyd, then on the cluster's, so a slow spell of
# the machine falls on both; per mix: the median requests/s of each, the median of the per-round
# ratios cluster ÷ single, and the CPU the Redis side used per request (µs; the three nodes added
# up for the cluster).
set -eu
cd "$(dirname "$0")/../.."
seconds=${1:-10}
runs=${2:-3}
top=$PWD
contrib/deps.sh redis-tools
build=${POSTWARDEN_BENCH_BUILD:-$top/build-bench}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPOSTWARDEN_BENCH=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target postwarden-policyd policy_load >/dev/null
work=$(mktemp -d /tmp/postwarden-bench.XXXXXX)
pids=""
cleanup() { [ -n "$pids" ] && kill $pids 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM

. contrib/bench/lib.sh
start_redis
start_dns_fixture

# Three masters, each with its own bus port and directory (nodes.conf).
nodes="" node_pids=""
for i in 1 2 3; do
	port=$(free_port) bus=$(free_port)
	mkdir -p "$work/node$i"
	redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work/node$i" \
		--cluster-enabled yes --cluster-config-file "$work/node$i/nodes.conf" \
		--cluster-port "$bus" >"$work/node$i.log" 2>&1 &
	pids="$pids $!" node_pids="$node_pids $!"
	wait_port "$port"
	nodes="$nodes 127.0.0.1:$port"
done
# shellcheck disable=SC2086
redis-cli --cluster create $nodes --cluster-yes >"$work/create.log" 2>&1
first=$(echo $nodes | cut -d' ' -f1)
until redis-cli -p "${first#*:}" CLUSTER INFO | grep -q cluster_state:ok; do sleep 0.1; done

# start_policyd NAME ADDRESS CLUSTER: a policyd on a free port; sets NAME_port and NAME_pid.
start_policyd() {
	port=$(free_port)
	cat >"$work/$1.conf" <<-CONF
	[redis]
	address = $2
	cluster = $3
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
	"$build/policyd/postwarden-policyd" -f -c "$work/$1.conf" 2>"$work/$1.log" &
	pids="$pids $!"
	eval "$1_port=$port $1_pid=$!"
	wait_port "$port"
}
start_policyd single "127.0.0.1:$redis_port" no
start_policyd cluster "$(echo $nodes | tr ' ' ',')" yes
redis-cli -p "$redis_port" SADD pw:block:domain bench-blocked.example >/dev/null
redis-cli -c -p "${first#*:}" SADD pw:block:domain bench-blocked.example >/dev/null

load() { "$build/contrib/bench/policy_load" --port "$1" --connections 64 --seconds "$seconds" --mix "$2"; }
median_of() { sort -t= -k5 -n | awk -v n="$runs" '{ line[NR] = $0 } END { print line[int((n + 1) / 2)] }'; }
ticks() { for p in "$@"; do awk '{ print $14 + $15 }' "/proc/$p/stat"; done | awk '{ s += $1 } END { print s }'; }
total_of() { sed 's/.*total=\([0-9]*\).*/\1/'; }
# the median of the per-round ratios of two files of load lines, line by line: A's rps ÷ B's
ratio_median() {
	paste -d' ' "$1" "$2" | sed 's/.* rps=\([0-9]*\).* rps=\([0-9]*\).*/\1 \2/' |
		awk '{ printf "%.2f\n", $1 / $2 }' | sort -n |
		awk '{ r[NR] = $0; all = all (NR > 1 ? " " : "") $0 }
			END { m = NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2; printf "%.2f (rounds: %s)", m, all }'
}
us_per_request() { awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }'; }

for port in $single_port $cluster_port; do
	"$build/contrib/bench/policy_load" --port "$port" --connections 1 --seconds 0.5 --prepass 1.2 >/dev/null
done
echo "== machine: $(nproc) cores, $(uname -r); seconds=$seconds runs=$runs (median), 64 connections"
for mix in known new new-client auth submission blocked; do
	: >"$work/single" ; : >"$work/cluster"
	st=0 ct=0 sn=0 cn=0
	for r in $(seq "$runs"); do
		t0=$(ticks "$redis_pid")
		line=$(load "$single_port" "$mix:100")
		st=$((st + $(ticks "$redis_pid") - t0)) sn=$((sn + $(echo "$line" | total_of)))
		echo "$line" >>"$work/single"
		# shellcheck disable=SC2086
		t0=$(ticks $node_pids)
		line=$(load "$cluster_port" "$mix:100")
		# shellcheck disable=SC2086
		ct=$((ct + $(ticks $node_pids) - t0)) cn=$((cn + $(echo "$line" | total_of)))
		echo "$line" >>"$work/cluster"
	done
	echo "$(printf '%-11s' "$mix") single:  $(median_of <"$work/single") redis_cpu_us=$(us_per_request "$st" "$sn")"
	echo "$(printf '%-11s' "") cluster: $(median_of <"$work/cluster") redis_cpu_us=$(us_per_request "$ct" "$cn")"
	echo "$(printf '%-11s' "") cluster ÷ single: $(ratio_median "$work/cluster" "$work/single")"
done
grep -h "error\|CROSSSLOT" "$work/single.log" "$work/cluster.log" | head -5 || true
