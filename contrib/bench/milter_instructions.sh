#!/bin/sh
# milter_instructions.sh — instructions postwarden-milter executes per message, counted by
# callgrind, with where they go: a figure that does not move with the machine's load (unlike
# messages/s), to compare before and after a change, and to see what a message costs.
#
#   contrib/bench/milter_instructions.sh [SECONDS]     default: 8
#   CALLGRIND_OUT=FILE contrib/bench/milter_instructions.sh   also keeps the profile there
#                                                             (callgrind_annotate FILE)
#
# Method: the corpus of milter.sh (200 messages from 10 domains, rsa-sha256 and ed25519-sha256
# alternately, every one passing SPF, DKIM and DMARC), the bench's DNS server and a redis-server;
# postwarden-milter runs under valgrind --tool=callgrind on a unix socket; after a warm-up (3 s
# of milter_load, one session) its counters are zeroed, milter_load runs SECONDS more, and the
# counters are dumped. Instructions of every milter thread / messages accepted in that run.
set -eu
cd "$(dirname "$0")/../.."
top=$PWD
seconds=${1:-8}
py=/usr/bin/python3 # Debian's, which has python3-dkim and python3-nacl
command -v valgrind >/dev/null || { echo "milter_instructions.sh: valgrind is needed" >&2; exit 1; }
build=${POSTWARDEN_BENCH_BUILD:-$top/build-bench}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPOSTWARDEN_BENCH=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target postwarden-milter milter_load >/dev/null
work=$(mktemp -d /tmp/postwarden-milter-instr.XXXXXX)
chmod 755 "$work"
pids=""
cleanup() { [ -n "$pids" ] && kill $pids 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM

PY=$py
. contrib/bench/lib.sh
$py contrib/bench/milter_corpus.py "$work/corpus" --messages 200 --domains 10 >/dev/null
start_redis
$py contrib/bench/dns53.py "$work/corpus/zone" "$work/dnsaddr" 2>"$work/dns.log" &
pids="$pids $!"
wait_file "$work/dnsaddr" -s
cat >"$work/milter.conf" <<CONF
[redis]
address = 127.0.0.1:$redis_port
[policyd]
trusted_networks = 192.0.2.255/32
[milter]
listen = unix:$work/milter.sock
authserv_id = bench.test
[dns]
nameservers = $(cat "$work/dnsaddr"):53
CONF
valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
	"$build/milter/postwarden-milter" -f -c "$work/milter.conf" >"$work/milter.log" 2>&1 &
pid=$!
pids="$pids $pid"
wait_file "$work/milter.sock"
load="$build/contrib/bench/milter_load --milter unix:$work/milter.sock --corpus $work/corpus --sessions 1"
$load --seconds 3 >/dev/null
callgrind_control -z "$pid" >/dev/null 2>&1
line=$($load --seconds "$seconds")
callgrind_control -d "$pid" >/dev/null 2>&1
messages=$(echo "$line" | sed 's/.* accepted=\([0-9]*\).*/\1/')
case "$line" in *" errors=0 "*) ;; *) echo "milter_load: $line" >&2; exit 1 ;; esac
dump=$(newest_dump "$work"/cg.out.*)
ir=$(total_of "$dump")
echo "instructions/message=$((ir / messages)) (messages=$messages)"
# Where they go: inclusive counts of the calls that make up a message, per message.
callgrind_annotate --inclusive=yes "$dump" 2>/dev/null | awk -v n="$messages" '
	function show(label, fn) { if (fn in ir) printf "  %-52s %9d\n", label, ir[fn] / n }
	/^ *[0-9,]+ \(/ {
		v = $1; gsub(",", "", v)
		f = $0; sub(/^[^:]*:/, "", f); sub(/ \[.*/, "", f)
		if (!(f in ir)) ir[f] = v
	}
	END {
		show("DKIM, end of headers (libopendkim: keys, verify)", "dkim_eoh")
		show("  ed25519 verify (OpenSSL EVP_DigestVerify)", "EVP_DigestVerify")
		show("  RSA public key from DER (OpenSSL d2i_PUBKEY_bio)", "d2i_PUBKEY_bio")
		show("  RSA verify (OpenSSL RSA_public_decrypt)", "RSA_public_decrypt")
		show("DKIM, body (libopendkim canonicalisation + hash)", "dkim_body")
		show("  SHA-256 (OpenSSL SHA256_Update, body and headers)", "SHA256_Update")
		show("DKIM, header fields (libopendkim)", "dkim_header")
		show("SPF, DMARC and the verdict (end of message)", "postwarden::milter::Session::end_of_message_inbound()")
	}'
[ -n "${CALLGRIND_OUT:-}" ] && cp "$dump" "$CALLGRIND_OUT"
exit 0
