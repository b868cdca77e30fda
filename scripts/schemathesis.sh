#!/usr/bin/env bash
# Runs schemathesis (every check, bounded) against a live latchkey built from
# this tree, on a fresh SQLite database, with an account for the bearer routes.
# Exits non-zero on any failure. Needs `pip install schemathesis`.
#
#   scripts/schemathesis.sh [MAX_EXAMPLES]     (default 40)
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${1:-40}
command -v schemathesis >/dev/null || { echo "schemathesis is needed: pip install schemathesis" >&2; exit 1; }

cargo build --quiet --bin latchkey
work=$(mktemp -d)
cleanup() { [ -n "${server:-}" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"

# Rate limits off: one generator on one address would otherwise see 429s.
# Mail to the log, so the email routes run their whole course.
LATCHKEY_LISTEN="127.0.0.1:$port" LATCHKEY_DATABASE_URL="sqlite://$work/latchkey.db?mode=rwc" \
  LATCHKEY_RATE_LIMITS=off LATCHKEY_LOG=warn LATCHKEY_SMTP_URL=log: LATCHKEY_EMAIL_SIGN_IN=on \
  target/debug/latchkey 2>"$work/server.log" &
server=$!
for _ in $(seq 1 300); do
  curl -sf "$base/ready" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.1
done

export LOGIN_USERNAME=schemathesis LOGIN_PASSWORD="tangerine lantern 42"
curl -sf -o /dev/null -X POST "$base/register" -H 'content-type: application/json' \
  -d "{\"username\":\"$LOGIN_USERNAME\",\"email\":\"schemathesis@example.com\",\"password\":\"$LOGIN_PASSWORD\"}"

status=0
timeout 900 schemathesis --config-file tests/schemathesis/schemathesis.toml run "$base/openapi.json" \
  --url "$base" --checks all --max-examples "$examples" --no-color || status=$?
if grep -q 'panicked' "$work/server.log"; then
  echo "the server panicked:" >&2; grep -A3 panicked "$work/server.log" >&2; status=1
fi
exit "$status"
