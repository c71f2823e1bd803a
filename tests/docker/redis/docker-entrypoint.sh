#!/bin/sh
# docker-entrypoint.sh — what the official Redis image's entry point does, with setpriv for gosu:
# started as root to run redis-server, it gives /data to the user redis and runs Redis as that user.
set -e
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
	find . \! -user redis -exec chown redis '{}' +
	exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi
[ "$(umask)" = 0022 ] && umask 0077
exec "$@"
