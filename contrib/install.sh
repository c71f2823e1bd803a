#!/bin/sh
# install.sh — build postwarden and install the programs, their configuration, the systemd units
# and the manual pages (`cmake --install`, see contrib/install.cmake). The Dockerfile's build
# stage runs this script; tests/packaging runs it against the test build, so both install the
# same way.
#
#   contrib/install.sh              into /usr (configuration in /etc/postwarden), as root
#   contrib/install.sh DESTDIR      the same tree under DESTDIR (for an image or a package)
#   PREFIX=/usr/local contrib/install.sh
#   POSTWARDEN_BUILD_DIR=DIR        the build directory (default build-release): an existing one
#                                   is used as it is configured; a new one is configured for a
#                                   release build without the tests
#
# An existing /etc/postwarden/postwarden.conf is never overwritten.
set -eu
destdir=${1:-}
case $destdir in "" | /*) ;; *) destdir=$(pwd)/$destdir ;; esac
cd "$(dirname "$0")/.."

prefix=${PREFIX:-/usr}
build=${POSTWARDEN_BUILD_DIR:-build-release}
if [ ! -f "$build/CMakeCache.txt" ]; then
	cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
		-DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
fi
cmake --build "$build" -j "$(nproc)"
DESTDIR=$destdir cmake --install "$build" --prefix "$prefix" --strip
