#!/bin/sh
# test_names.sh PROGRAM... — fails when a Catch2 test case of a test program is named with a
# semicolon. catch_discover_tests makes a CMake list of the names, so such a name is cut in two
# ctest entries whose filters match no test case: both pass without running anything.
status=0
for program in "$@"; do
	# Catch2 2 exits with the number of test cases listed: the output says whether it worked.
	names=$("$program" --list-test-names-only)
	[ -n "$names" ] || { echo "$program: lists no test cases" >&2; exit 1; }
	bad=$(printf '%s\n' "$names" | grep ';') || continue
	printf '%s: a semicolon in a test case name keeps it from running under ctest:\n%s\n' \
		"$(basename "$program")" "$bad" >&2
	status=1
done
exit $status
