#!/bin/sh
# make-secret.sh — the Redis password of docker-compose.yml: 32 random characters in
# secrets/redis_password, beside this script, unless one is there already. The folder is mode
# 0700, so no other user of the host can read it; the file itself is 0644, so that the users
# inside the containers (redis, postwarden) can read the copy that compose mounts for them.
#
#   ./make-secret.sh          # then: docker-compose up --build
set -eu
cd "$(dirname "$0")"
umask 077
mkdir -p secrets
chmod 0700 secrets
if [ ! -s secrets/redis_password ]; then
	password=$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32)
	printf '%s\n' "$password" >secrets/redis_password.new
	mv secrets/redis_password.new secrets/redis_password
	echo "made secrets/redis_password"
fi
chmod 0644 secrets/redis_password
