#!/bin/sh
# script_instructions.sh — instructions redis-server executes per call of our Lua scripts, and
# per quota transaction (policyd/quota.hpp, reserve_transaction), counted by callgrind: what
# each costs Redis, repeatable whatever else the machine runs (requests/s of Redis itself move
# with the machine by ±30 % here).
#
#   contrib/bench/script_instructions.sh [CALLS]     default: 1000
#
# Method: redis-server runs under valgrind --tool=callgrind; redis-benchmark (one client) sends
# CALLS, then 2 × CALLS EVALSHA calls to a fresh server each time; the difference of the two
# totals over CALLS is the cost of one call, start-up and shutdown cancelled out. Each call is
# a new reservation (quota.lua, one window, as the bench's auth mix) or a new triplet
# (greylist.lua, as the new mix): unique members from redis-benchmark's __rand_int__. The
# transaction is the one policyd sends for the same reservation (MULTI, its seven commands,
# EXEC), fed by redis-cli --pipe; sending EVALSHA that way instead costs within 1 % of what
# redis-benchmark's calls cost. "later in the second" is the same transaction without the
# window's PEXPIRE and the ZCOUNT, as policyd sends it once it set the window's TTL in the
# current bucket and asked for due reservations in the current second (policyd/quota.hpp,
# QuotaMemo).
set -eu
cd "$(dirname "$0")/../.."
calls=${1:-1000}
for tool in valgrind redis-server redis-benchmark redis-cli; do
	command -v $tool >/dev/null || { echo "script_instructions.sh: $tool is needed" >&2; exit 1; }
done
work=$(mktemp -d /tmp/postwarden-script-instr.XXXXXX)
pids=""
cleanup() { [ -n "$pids" ] && kill $pids 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM
. contrib/bench/lib.sh

# instructions SCRIPT N ARGS...: redis-server's total for N calls of SCRIPT with ARGS.
instructions() {
	script=$1 n=$2
	shift 2
	port=$(free_port)
	valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" redis-server --port "$port" \
		--bind 127.0.0.1 --save "" --appendonly no --dir "$work" >/dev/null 2>&1 &
	pid=$!
	pids="$pids $pid"
	wait_port "$port"
	if [ "$script" = transaction ] || [ "$script" = transaction-fresh ]; then
		transactions "$n" "$script" | redis-cli -p "$port" --pipe >/dev/null
	else
		sha=$(redis-cli -p "$port" SCRIPT LOAD "$(cat "$script")")
		redis-benchmark -p "$port" -c 1 -n "$n" -r 100000000 EVALSHA "$sha" "$@" >/dev/null
	fi
	redis-cli -p "$port" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
	wait "$pid" 2>/dev/null || true
	total_of "$work/cg.out"
	rm -f "$work/cg.out"
}

# transactions N KIND: N reservations as policyd's transaction, in RESP, each for a new member;
# KIND transaction-fresh leaves out the window's PEXPIRE and the ZCOUNT.
transactions() {
	awk -v n="$1" -v kind="$2" -v now="$now" -v cutoff=$((now - 600000)) -v bucket=$((now / 1440000)) 'function cmd(s,   a, i, k, out) {
		k = split(s, a, " ")
		out = "*" k "\r\n"
		for (i = 1; i <= k; i++) out = out "$" length(a[i]) "\r\n" a[i] "\r\n"
		return out
	}
	BEGIN {
		h = "pw:quota:{u}:held"; u = "pw:quota:{u}:used:86400"
		for (i = 0; i < n; i++)
			printf "%s", cmd("MULTI") cmd("ZADD " h " NX " now " bench." i "@r") \
				cmd("HINCRBY " u " " bucket " 1") \
				(kind == "transaction" ? cmd("PEXPIRE " u " 87840000") : "") \
				cmd("PEXPIRE " h " 87840000") cmd("HGETALL " u) \
				cmd("HGET pw:quota:{u}:throttle until") \
				(kind == "transaction" ? cmd("ZCOUNT " h " -inf " cutoff) : "") cmd("EXEC")
	}'
}

per_call() {
	a=$(instructions "$@")
	script=$1 n=$2
	shift 2
	b=$(instructions "$script" $((2 * n)) "$@")
	echo $(((b - a) / n))
}

now=1796000000000
echo "quota.lua reserve instructions/call=$(per_call common/redis/lua/quota.lua "$calls" 3 \
	'pw:quota:{u}:held' 'pw:quota:{u}:throttle' 'pw:quota:{u}:used:86400' \
	reserve $now 'bench.1 r__rand_int__@x.example' 600 3600 1 100000000 86400000 1440000 0)"
echo "greylist.lua new instructions/call=$(per_call common/redis/lua/greylist.lua "$calls" 2 \
	'pw:grey:{198.51.100.0/24}:s__rand_int__@x.example:r@y.example' 'pw:awl-domains:{198.51.100.0/24}' \
	$now 300 86400 3024000 0)"
echo "quota transaction reserve instructions/call=$(per_call transaction "$calls")"
echo "quota transaction reserve, later in the second instructions/call=$(per_call \
	transaction-fresh "$calls")"
echo 'return 1' >"$work/empty.lua"
echo "empty script (return 1) instructions/call=$(per_call "$work/empty.lua" "$calls" 0)"
