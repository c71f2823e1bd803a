#!/bin/sh
# instructions.sh — instructions policyd, and Redis for it, execute per request, counted by
# callgrind: figures that do not move with the machine's load (unlike requests/s), so they are
# the ones to compare before and after a change, and against the baseline recorded in
# instructions.baseline (per mix: policyd's, then Redis's).
#
#   contrib/bench/instructions.sh [MIX...]        default: known auth blocked new new-client
#                                                 submission
#   contrib/bench/instructions.sh --check         fail when policyd's count for a mix is 10 %
#                                                 above the baseline, or Redis's half again
#                                                 (and 5,000 more)
#
# Method: policyd and redis-server both run under valgrind --tool=callgrind; after a warm-up
# (the prepass and one second of the mix) their counters are zeroed, policy_load runs the mix for
# 5 s with 16 connections, and the counters are dumped. policyd: instructions of every thread /
# requests; two runs differ by 0.5 % at most. Redis: what its commands cost
# (--toggle-collect=processCommand: lookup, MULTI queueing, execution, replies into buffers;
# not reading, parsing or writing the socket, nor its timers), per request. That one moves
# between runs (auth: 52k-62k, new: 9.9k-10.4k): the auth mix never commits, so each user's
# held set grows through the run and with it what ZADD and ZCOUNT cost, and what QuotaMemo
# leaves out (a window's PEXPIRE within a bucket, the ZCOUNT within a second) depends on the
# rate. So it is checked only for a gross regression, such as a script call more per request.
set -eu
cd "$(dirname "$0")/../.."
top=$PWD
check=no
[ "${1:-}" = --check ] && check=yes && shift
mixes=${*:-known auth blocked new new-client submission}
command -v valgrind >/dev/null || { echo "instructions.sh: valgrind is needed" >&2; exit 1; }
build=${POSTWARDEN_BENCH_BUILD:-$top/build-bench}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPOSTWARDEN_BENCH=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target postwarden-policyd policy_load >/dev/null
work=$(mktemp -d /tmp/postwarden-instr.XXXXXX)
pids=""
cleanup() { [ -n "$pids" ] && kill $pids 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM

. contrib/bench/lib.sh
start_redis valgrind --tool=callgrind --toggle-collect=processCommand \
	--callgrind-out-file="$work/redis.cg"
start_dns_fixture

# baseline MIX FIELD: that field of the mix's line in instructions.baseline (empty if none).
baseline() { awk -v mix="$1" -v f="$2" '$1 == mix { print $f }' contrib/bench/instructions.baseline; }
# compare MIX WHO COUNT BASE DIVISOR SLACK: a regression when COUNT is above BASE by more than
# BASE / DIVISOR and more than SLACK; a note when it is as far below.
compare() {
	[ -n "$4" ] || return 0
	over=$(($4 / $5))
	[ "$over" -lt "$6" ] && over=$6
	if [ "$3" -gt $(($4 + over)) ]; then
		echo "  regression: $2 $3 against a baseline of $4" >&2
		status=1
	elif [ "$3" -lt $(($4 - over)) ]; then
		echo "  $2 as far below the baseline, $4: lower it in instructions.baseline" >&2
	fi
}

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
	callgrind_control -z "$redis_pid" >/dev/null 2>&1
	line=$("$build/contrib/bench/policy_load" --port "$port" --connections 16 --seconds 5 --mix "$mix:100")
	callgrind_control -d "$pid" >/dev/null 2>&1
	callgrind_control -d "$redis_pid" >/dev/null 2>&1
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	total=$(echo "$line" | sed 's/.*total=\([0-9]*\).*/\1/')
	per=$(($(total_of "$(newest_dump "$work"/cg.out.*)") / total))
	redis=$(($(total_of "$(newest_dump "$work"/redis.cg.*)") / total))
	echo "$mix instructions/request=$per redis=$redis (requests=$total)"
	rm -f "$work"/cg.out* "$work"/redis.cg.*
	[ "$check" = yes ] || continue
	compare "$mix" policyd "$per" "$(baseline "$mix" 2)" 10 0
	compare "$mix" Redis "$redis" "$(baseline "$mix" 3)" 2 5000
done
exit $status
