# lib.sh — what the bench scripts share (sourced, not run): free loopback ports, waiting for a
# server, and the private redis-server, DNS server and Postfix they start. Needs $work (a
# temporary directory) and $pids (the PIDs the caller's cleanup kills); PY may name the Python.
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

# start_redis [WRAPPER...]: a redis-server without persistence on a free port, run by WRAPPER if
# given (valgrind and its options); sets redis_port, redis_pid.
start_redis() {
	redis_port=$(free_port)
	"$@" redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
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

# in_ns CMD...: runs CMD with /etc/resolv.conf replaced by $work/resolv.conf, in a private mount
# namespace: OpenDMARC (and libspf2 inside it) and Postfix can only be pointed at a nameserver
# that way. It execs, so that `in_ns ... &` leaves the daemon's own PID in $!; call it in a
# subshell otherwise.
in_ns() { exec unshare --mount --propagation private sh -c "mount --bind $work/resolv.conf /etc/resolv.conf && exec \"\$@\"" sh "$@"; }

# start_postfix SINK_PORT SMTP_PORT: a private Postfix (config, queue and log in $work) listening
# on 127.0.0.1:SMTP_PORT and relaying rcpt.example to smtp-sink on SINK_PORT, no milter yet;
# sets postfix_dir (the caller's cleanup runs `postfix -c "$postfix_dir" stop`).
start_postfix() {
	sink_port=$1 smtp_port=$2
	postfix_dir=$work/postfix
	mkdir -p "$postfix_dir" "$work/postfix-queue"
	cat >"$postfix_dir/main.cf" <<-CF
	compatibility_level = 3.6
	queue_directory = $work/postfix-queue
	data_directory = $work/postfix-data
	meta_directory = /etc/postfix
	mail_owner = postfix
	setgid_group = postdrop
	maillog_file = $work/maillog
	maillog_file_prefixes = $work
	myhostname = mx.bench.test
	mydestination =
	local_recipient_maps =
	alias_maps =
	alias_database =
	inet_interfaces = 127.0.0.1
	inet_protocols = ipv4
	mynetworks = 127.0.0.0/8
	relay_domains = rcpt.example
	relayhost = [127.0.0.1]:$sink_port
	smtp_dns_support_level = disabled
	smtputf8_enable = no
	biff = no
	default_process_limit = 200
	milter_protocol = 6
	milter_default_action = tempfail
	smtpd_milters =
	CF
	cat >"$postfix_dir/master.cf" <<-CF
	127.0.0.1:$smtp_port inet n - n - - smtpd
	pickup    unix  n       -       n       60      1       pickup
	cleanup   unix  n       -       n       -       0       cleanup
	qmgr      unix  n       -       n       300     1       qmgr
	rewrite   unix  -       -       n       -       -       trivial-rewrite
	bounce    unix  -       -       n       -       0       bounce
	defer     unix  -       -       n       -       0       bounce
	trace     unix  -       -       n       -       0       bounce
	verify    unix  -       -       n       -       1       verify
	flush     unix  n       -       n       1000?   0       flush
	proxymap  unix  -       -       n       -       -       proxymap
	smtp      unix  -       -       n       -       -       smtp
	relay     unix  -       -       n       -       -       smtp
	showq     unix  n       -       n       -       -       showq
	error     unix  -       -       n       -       -       error
	retry     unix  -       -       n       -       -       error
	discard   unix  -       -       n       -       -       discard
	anvil     unix  -       -       n       -       1       anvil
	scache    unix  -       -       n       -       1       scache
	postlog   unix-dgram n  -       n       -       1       postlogd
	CF
	(in_ns postfix -c "$postfix_dir" start) >"$work/postfix.start" 2>&1 || { cat "$work/postfix.start" "$work/maillog" >&2; exit 1; }
	wait_port "$smtp_port"
}

# postfix_drained: until start_postfix's queue is empty (120 s at most), so that delivering one
# measurement's messages does not fall into the next one's time.
postfix_drained() {
	i=0
	while [ -n "$(cd "$work/postfix-queue" && find maildrop incoming active deferred hold -type f 2>/dev/null | head -1)" ]; do
		i=$((i + 1))
		[ $i -gt 2400 ] && { echo "the Postfix queue did not drain" >&2; return 1; }
		sleep 0.05
	done
}

# newest_dump FILE...: the newest of callgrind's dumps FILE... (callgrind_control -d writes one
# per call); total_of DUMP: the instructions it counted.
newest_dump() {
	# shellcheck disable=SC2012
	ls -t "$@" | head -1
}
total_of() { sed -n 's/^summary: //p' "$1"; }
