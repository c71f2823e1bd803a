#!/bin/sh
# run.sh — try postwarden on this machine: install what is missing, build, and run the daemons in
# the foreground with conf/postwarden.conf (or -c FILE), logging to the terminal. When nothing
# answers at the configured [redis] address, a private redis-server is started on it, with its
# data under ./run/. Ctrl-C stops all of it.
#
#   contrib/run.sh [-c FILE]
set -eu
cd "$(dirname "$0")/.."
conf=conf/postwarden.conf
[ "${1:-}" = "-c" ] && [ -n "${2:-}" ] && conf=$2

contrib/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"
build/policyd/postwarden-policyd -c "$conf" --check-config

# The [redis] address, as the daemons will read it.
address=$(sed -n '/^\[redis\]/,/^\[/{s/^address *= *\([^ #;]*\).*/\1/p}' "$conf" | head -n 1)
address=${address:-127.0.0.1:6379}

pids=""
stop() {
	trap - INT TERM EXIT
	[ -n "$pids" ] && kill $pids 2>/dev/null
	wait 2>/dev/null
	exit 0
}
trap stop INT TERM EXIT

redis_answers() {
	case $address in
	unix:*) redis-cli -s "${address#unix:}" ping >/dev/null 2>&1 ;;
	\[*) host=${address%]:*}; redis-cli -h "${host#[}" -p "${address##*:}" ping >/dev/null 2>&1 ;;
	*) redis-cli -h "${address%:*}" -p "${address##*:}" ping >/dev/null 2>&1 ;;
	esac
}

if ! redis_answers; then
	mkdir -p run
	case $address in
	unix:*) set -- --port 0 --unixsocket "${address#unix:}" ;;
	*) set -- --port "${address##*:}" --bind 127.0.0.1 ;;
	esac
	echo "run.sh: no Redis at $address; starting a private one in ./run/"
	redis-server "$@" --dir "$PWD/run" --save 60 1 --appendonly no --daemonize no &
	pids="$pids $!"
	i=0
	until redis_answers; do
		i=$((i + 1))
		[ $i -gt 100 ] && { echo "run.sh: redis-server did not start" >&2; exit 1; }
		sleep 0.1
	done
fi

build/policyd/postwarden-policyd -f -c "$conf" &
pids="$pids $!"
if [ -x build/milter/postwarden-milter ]; then
	build/milter/postwarden-milter -f -c "$conf" &
	pids="$pids $!"
fi
echo "run.sh: running (Ctrl-C stops everything)"
wait
