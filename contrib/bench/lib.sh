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

# start_redis: a redis-server without persistence on a free port; sets redis_port, redis_pid.
start_redis() {
	redis_port=$(free_port)
	redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
		>"$work/redis.log" 2>&1 &
	redis_pid=$!
	pids="$pids $!"
	wait_port "$redis_port"
}

# start_dns_fixture: the bench's DNS server (contrib/bench/dns53.py: the tests' zone server on a
# random 127.x.y.z, port 53, one thread, so that it is not what bounds a mix); sets dns_server
# (ADDRESS:53). The senders' domains have an SPF record that neither passes nor fails (so every
# new triplet is greylisted, not trusted) and an SOA, so that the DNS answer cache keeps the
# negative answers too, as it would for any real domain.
start_dns_fixture() {
	cat >"$work/zone" <<'ZONE'
bench-new.example 300 TXT "v=spf1 ?all"
bench-new.example 300 SOA ns.bench-new.example host.bench-new.example 1 7200 900 86400 300
bench-known.example 300 TXT "v=spf1 ?all"
bench-known.example 300 SOA ns.bench-known.example host.bench-known.example 1 7200 900 86400 300
ZONE
	$py contrib/bench/dns53.py "$work/zone" "$work/dnsaddr" >"$work/dns.log" 2>&1 &
	pids="$pids $!"
	wait_file "$work/dnsaddr" -s  # written once the server listens
	dns_server=$(cat "$work/dnsaddr"):53
}
