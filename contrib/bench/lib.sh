# lib.sh — what the bench scripts share (sourced, not run): free loopback ports, waiting for a
# server, and the private redis-server they start. Needs $work (a temporary directory) and
# $pids (the PIDs the caller's cleanup kills); PY may name the Python to use.
py=${PY:-python3}

free_port() { $py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_port PORT: until something accepts on 127.0.0.1:PORT (30 s at most).
wait_port() {
	i=0
	until $py -c "import socket; socket.create_connection(('127.0.0.1',$1),1)" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 300 ] && { echo "port $1 never opened" >&2; return 1; }
		sleep 0.1
	done
}

# wait_file FILE [TEST]: until `test TEST FILE` holds, -e (exists) by default (15 s at most).
wait_file() {
	i=0
	until [ "${2:--e}" "$1" ]; do
		i=$((i + 1))
		[ $i -gt 150 ] && { echo "$1 never appeared" >&2; return 1; }
		sleep 0.1
	done
}

# start_redis: a redis-server without persistence on a free port; sets redis_port.
start_redis() {
	redis_port=$(free_port)
	redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
		>"$work/redis.log" 2>&1 &
	pids="$pids $!"
	wait_port "$redis_port"
}

# start_dns_fixture: the tests' DNS server with an empty zone (SPF none); sets dns_port.
start_dns_fixture() {
	: >"$work/zone"
	$py tests/fixtures/dnsserver.py --zone "$work/zone" --port-file "$work/dnsport" >"$work/dns.log" 2>&1 &
	pids="$pids $!"
	wait_file "$work/dnsport" -s  # written once the server listens
	dns_port=$(cat "$work/dnsport")
}
