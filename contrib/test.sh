#!/bin/sh
# test.sh — install what is missing, build, and run every test with ctest.
#
#   contrib/test.sh            all tests
#   contrib/test.sh -L unit    only one label (unit, integration, spf, ...); any ctest option works
#
# Every service a test needs (redis-server, a DNS server, the daemons) is started by the test
# itself on a free loopback port and stopped by its PID; nothing on the machine is touched.
set -eu
cd "$(dirname "$0")/.."

contrib/deps.sh

build=${POSTWARDEN_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPOSTWARDEN_WERROR=ON >/dev/null
cmake --build "$build" -j "$(nproc)"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" "$@"
