#!/bin/sh
# self_contained.sh SOURCE_DIR — fails when a tracked file names a path outside the repository
# (the folder beside the clone), so that a fresh clone builds and tests with nothing else.
cd "$1" || exit 1
git rev-parse --git-dir >/dev/null 2>&1 || { echo "not a git checkout: $1" >&2; exit 1; }
hits=$(git ls-files -z | xargs -0 grep -nI -e '\.\./shared' -- 2>/dev/null)
[ -z "$hits" ] && exit 0
printf 'tracked files read from outside the repository:\n%s\n' "$hits" >&2
exit 1
