#!/bin/sh
# deps.sh — install, from Debian 12 packages, whatever postwarden needs to build, run and test
# and is not on this machine yet. Idempotent: it asks apt only for missing packages.
#   contrib/deps.sh [EXTRA-PACKAGE...]   (contrib/bench/run.sh adds postgrey this way)
#   contrib/deps.sh --build     only what compiling the programs needs (the Dockerfile's build stage)
#   contrib/deps.sh --runtime   only what running them needs (the Docker image); tests/packaging
#                               checks it names the package of every library the programs link
#
# Package installs must never start services on the machine (a redis-server, later Postfix or
# Dovecot, that the operator did not ask for): a temporary policy-rc.d refuses every start while
# apt runs, and is removed afterwards unless it was already there.
set -eu

# redis-server also runs the Sentinels of the ha tests and contrib/bench/failover.py
# (redis-server FILE --sentinel), so Debian's redis-sentinel package (a unit and a config) is not
# needed.
packages="build-essential cmake pkg-config clang-format
libboost-dev libjemalloc-dev libhiredis-dev libspf2-dev libc-ares-dev catch2
redis-server redis-tools python3 python3-yaml prometheus
libmilter-dev libopendkim-dev libpsl-dev publicsuffix python3-dkim python3-nacl python3-spf
libidn2-dev libssl-dev
nlohmann-json3-dev
postfix dovecot-core dovecot-imapd
mandoc man-db docker-compose valgrind
podman runc netavark aardvark-dns iptables debootstrap
$*"
case "${1:-}" in
--build)
	shift
	packages="build-essential cmake pkg-config libboost-dev libjemalloc-dev libhiredis-dev libspf2-dev
libc-ares-dev libmilter-dev libopendkim-dev libpsl-dev libidn2-dev libssl-dev
nlohmann-json3-dev $*"
	;;
--runtime)
	shift
	packages="libjemalloc2 libhiredis0.14 libspf2-2 libc-ares2 libmilter1.0.1 libopendkim11 libpsl5 publicsuffix libidn2-0 libssl3 $*"
	;;
esac

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

# Postfix and Dovecot are only for the end-to-end tests (tests/e2e), which run private instances
# with their own config directories. Installing them must leave the machine's mail setup alone:
# - postfix's debconf is preseeded to "No configuration": no /etc/postfix/main.cf is written,
#   nothing listens; already installed packages are never reinstalled or reconfigured (only the
#   missing ones are asked for, and a preseed does not change an answered question);
# - the policy-rc.d above stops the packages' maintainer scripts from starting either service;
# - postfix conflicts with other MTAs (exim4, sendmail, ...): if installing it would remove any
#   installed package, it is left out, and the e2e tests skip saying postfix is missing.
case " $missing " in *" postfix "*)
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	# shellcheck disable=SC2086
	removed=$(apt-get install -s -qq --no-install-recommends $missing 2>/dev/null | sed -n 's/^Remv \([^ ]*\).*/\1/p' | tr '\n' ' ')
	if [ -n "$removed" ]; then
		echo "deps.sh: not installing postfix: it would remove $removed(another MTA); the e2e tests will skip" >&2
		missing=$(echo "$missing" | sed 's/ postfix\b//')
	fi
	;;
esac
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
# A service these packages just brought in stays off at the next boot too (the machine had none
# before; the e2e tests start their own instances).
for p in $missing; do
	case $p in
	postfix) unit=postfix ;;
	dovecot-core | dovecot-imapd) unit=dovecot ;;
	prometheus) unit=prometheus ;; # only its promtool is used (tests/metrics)
	rspamd) unit=rspamd ;;         # contrib/bench/milter.sh runs its own instance
	*) continue ;;
	esac
	update-rc.d "$unit" disable >/dev/null 2>&1 || true
done
