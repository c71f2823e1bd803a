#!/bin/sh
# deps.sh — install, from Debian 12 packages, whatever postwarden needs to build, run and test
# and is not on this machine yet. Idempotent: it asks apt only for missing packages.
#
# Package installs must never start services on the machine (a redis-server, later Postfix or
# Dovecot, that the operator did not ask for): a temporary policy-rc.d refuses every start while
# apt runs, and is removed afterwards unless it was already there.
set -eu

packages="build-essential cmake pkg-config clang-format
libboost-dev libhiredis-dev libspf2-dev libc-ares-dev catch2
redis-server redis-tools python3 python3-yaml
libmilter-dev libopendkim-dev libpsl-dev publicsuffix python3-dkim python3-nacl"

missing=""
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: missing packages:$missing; run as root or install them" >&2
	exit 1
fi

made_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	made_policy=yes
fi
trap '[ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d' EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
