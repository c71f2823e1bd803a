#!/bin/sh
# test.sh — install what is missing, build, and run every test with ctest; then build again with
# AddressSanitizer + UndefinedBehaviorSanitizer and run the tests once more (all but e2e, whose
# daemons are the same code as the integration tests'), and with ThreadSanitizer for the milter
# and Redis client tests. Any sanitizer report fails the run. A whole run also counts policyd's
# and Redis's instructions per request (callgrind) against contrib/bench/instructions.baseline,
# and runs contrib/docker's compose stack with podman (tests/docker/sidecar.py).
#
#   contrib/test.sh            everything
#   contrib/test.sh -L unit    only one label (unit, integration, spf, fuzz, e2e); any ctest option
#                              (and no instruction count)
#   POSTWARDEN_NO_SANITIZE=1 contrib/test.sh    skip the sanitizer pass (quicker, local use)
#
# Every service a test needs (redis-server, a DNS server, the daemons, Postfix, Dovecot) is
# started by the test itself on a free loopback port and stopped by its PID.
set -eu
cd "$(dirname "$0")/.."

contrib/deps.sh

build=${POSTWARDEN_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPOSTWARDEN_WERROR=ON \
	-DPOSTWARDEN_BENCH=ON >/dev/null
cmake --build "$build" -j "$(nproc)"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" "$@"

# The performance regression check: instructions policyd executes per request of each mix, and
# what its commands cost Redis, counted by callgrind (not timed, so the machine's load does not
# move them), fail the run when one is well above contrib/bench/instructions.baseline (the
# script says how far). About 110 s. Only on a whole run; the bench tools it needs were built
# above (-DPOSTWARDEN_BENCH=ON).
if [ $# -eq 0 ]; then
	POSTWARDEN_BENCH_BUILD=$build contrib/bench/instructions.sh --check
fi

# The Docker sidecar (contrib/docker) as operators run it, with podman (tests/docker/sidecar.py):
# its images built from a local debootstrap base, the compose file's services up, one message
# greylisted by policyd and, on retry, stamped by the milter, everything removed after. 5 to 9
# minutes (the image build compiles postwarden). Only on a whole run; it skips (exit 77,
# "SKIPPED: ...") where podman cannot start a container, and fails on anything else.
if [ $# -eq 0 ]; then
	status=0
	tests/docker/sidecar.py || status=$?
	[ "$status" = 0 ] || [ "$status" = 77 ] || exit "$status"
fi

[ "${POSTWARDEN_NO_SANITIZE:-0}" = 1 ] && exit 0
# Without -Werror: under ASan, GCC 12 warns (maybe-uninitialized) inside libstdc++'s <regex> as
# Catch2 includes it; the normal build above already holds our code to zero warnings.
san=${build}-sanitize
cmake -S . -B "$san" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPOSTWARDEN_SANITIZE=address,undefined \
	>/dev/null
cmake --build "$san" -j "$(nproc)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	ctest --test-dir "$san" --output-on-failure -j "$(nproc)" -LE e2e "$@"

# ThreadSanitizer on the multi-threaded paths: the milter (libmilter runs one thread per MTA
# connection, all sharing the Services: SPF, DKIM, the PSL, Redis), the Redis client, and the DNS
# layer (the answer cache the milter's threads share: tests/dns/cache_tests.cpp). Only
# what those tests need is built; the daemons the tests start inherit TSAN_OPTIONS, so a race in
# the milter stops it and fails the test.
tsan=${build}-tsan
cmake -S . -B "$tsan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPOSTWARDEN_SANITIZE=thread >/dev/null
cmake --build "$tsan" -j "$(nproc)" --target postwarden-milter milter_tests redis_tests dns_tests
TSAN_OPTIONS=halt_on_error=1:abort_on_error=1:second_deadlock_stack=1 \
	ctest --test-dir "$tsan" --output-on-failure -j "$(nproc)" -R '^(milter|redis|dns):' "$@"
