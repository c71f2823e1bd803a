#!/bin/sh
# run.sh — builds the libFuzzer targets with clang and runs each one for a set time, one after
# the other (HARDENING.md records what these runs found).
#
#   tests/fuzz/run.sh [SECONDS [TARGET...]]     default: 600 seconds each, every target
#   e.g. tests/fuzz/run.sh 60 dmarc spf_dns
#
# Each run starts from the seed corpus in tests/fuzz/corpus/<target>/ and writes what it finds
# new to $BUILD/fuzz-work/<target>/ (not into the repository: only inputs worth keeping go
# there, by hand). A crash leaves crash-* files in $BUILD/fuzz-work/ and stops the script; add
# the input to the seed corpus once fixed, so ctest replays it from then on. A run also stops at
# 10 million executions. The last lines of each log (stat::number_of_executed_units) are the
# numbers for HARDENING.md.
set -eu
cd "$(dirname "$0")/../.."

seconds=${1:-600}
[ $# -gt 0 ] && shift
targets=${*:-"policy_protocol config addresses dmarc headers dkim spf_dns redis_reply auth_request"}
build=${POSTWARDEN_FUZZ_BUILD_DIR:-build-fuzz}

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
	-DCMAKE_CXX_COMPILER=clang++ -DPOSTWARDEN_FUZZ=ON >/dev/null
for t in $targets; do
	cmake --build "$build" -j "$(nproc)" --target "fuzz_$t" >/dev/null
done

work=$build/fuzz-work
for t in $targets; do
	mkdir -p "$work/$t"
	echo "fuzz_$t: $seconds s, log in $work/$t.log"
	(cd "$work" && "../tests/fuzz/fuzz_$t" -max_total_time="$seconds" -runs=10000000 \
		-timeout=25 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$t-" \
		"$t" "$OLDPWD/tests/fuzz/corpus/$t") >"$work/$t.log" 2>&1 || {
		echo "fuzz_$t failed; see $work/$t.log and $work/$t-crash-*" >&2
		exit 1
	}
	grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|Done)' "$work/$t.log"
done
