#!/usr/bin/env bash
# Scale-out test: three instances of a built latchkey on one fresh PostgreSQL
# database and Redis, behind Debian's haproxy, under steady load (register,
# login, refresh, protected route). A rolling restart must fail no request,
# a SIGKILL only the requests in flight on the killed instance, and a logout
# must reach every instance within 1 s. scripts/scale_load.py does the work;
# this makes and drops the database, bounded to 3 minutes in all. Never builds.
#
#   scripts/scale-out.sh [WORKERS]     (default 6 load threads)
#
# LATCHKEY_BINARY (default target/release/latchkey, else target/debug/latchkey);
# LATCHKEY_TEST_POSTGRES_URL (a superuser's URL; its database name is ignored,
# default postgres://latchkey:latchkey@127.0.0.1:5432/) and
# LATCHKEY_TEST_REDIS_URL (default redis://127.0.0.1:6379), as in .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-6}

binary=${LATCHKEY_BINARY:-}
if [ -z "$binary" ]; then
  binary=target/debug/latchkey
  [ -x target/release/latchkey ] && binary=target/release/latchkey
fi
[ -x "$binary" ] || { echo "no latchkey binary at $binary: build it first, or set LATCHKEY_BINARY" >&2; exit 1; }
for tool in haproxy psql python3; do
  command -v "$tool" >/dev/null || { echo "$tool is needed (apt-get install haproxy postgresql-client python3)" >&2; exit 1; }
done

postgres=${LATCHKEY_TEST_POSTGRES_URL:-postgres://latchkey:latchkey@127.0.0.1:5432/}
postgres=${postgres%/*}   # the server, without the database name
redis=${LATCHKEY_TEST_REDIS_URL:-redis://127.0.0.1:6379}
run=$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
database=latchkey_scale_$run
work=$(mktemp -d)

sql() { psql "$postgres/postgres" -q -v ON_ERROR_STOP=1 -c "$1"; }
cleanup() {
  # scale_load.py stops its instances and haproxy; FORCE covers a run cut short.
  sql "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
sql "CREATE DATABASE $database" >/dev/null

# In the foreground, so that Ctrl-C reaches everything; on time out
# scale_load.py gets SIGTERM and stops what it started.
timeout --foreground --kill-after=10 180 python3 scripts/scale_load.py --binary "$binary" --workers "$workers" \
  --database-url "$postgres/$database" --redis-url "$redis" --redis-prefix "latchkey-scale-$run:" \
  --work "$work" || {
  status=$?
  [ "$status" = 124 ] && echo "scale-out: FAILED: not finished within 180 s" >&2
  exit "$status"
}
