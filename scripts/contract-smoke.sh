#!/usr/bin/env bash
# Black-box check of the origin contract (shared/seed/CONTRACT.md) against the
# release binary, started with only LATCHKEY_LISTEN and LATCHKEY_DATABASE_URL.
#   scripts/contract-smoke.sh [DATABASE_URL]     (default: a fresh SQLite file)
# Prints one line per check and the time from process start to /ready.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${LATCHKEY_BINARY:-target/release/latchkey}
[ -x "$binary" ] || cargo build --release --quiet
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
database_url=${1:-"sqlite://$work/latchkey.db?mode=rwc"}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"

started=$(date +%s%N)
env -i PATH="$PATH" LATCHKEY_LISTEN="127.0.0.1:$port" LATCHKEY_DATABASE_URL="$database_url" LATCHKEY_LOG=warn \
  "$binary" >"$work/log" 2>&1 &
pid=$!
until curl -sf "$base/ready" >/dev/null 2>&1; do
  kill -0 "$pid" 2>/dev/null || { cat "$work/log"; exit 1; }
  sleep 0.002
done
ready=$(date +%s%N)
echo "start to /ready: $(( (ready - started) / 1000000 )) ms"
sleep 1
echo "idle RSS: $(awk '/VmRSS/ {print $2, $3}' "/proc/$pid/status")"

failures=0
passes=0
check() { # name, expected, actual
  if [ "$2" == "$3" ]; then echo "ok   $1"; passes=$((passes + 1)); else echo "FAIL $1: expected $2, got $3"; failures=$((failures + 1)); fi
}
user="smoke$RANDOM$RANDOM"
register() { curl -s -o "$work/body" -w '%{http_code}' -X POST "$base/register" -H 'Content-Type: application/json' -d "$1"; }

check "register 200" 200 "$(register "{\"username\":\"$user\",\"email\":\"$user@example.com\",\"password\":\"tangerine lantern 42\"}")"
check "register body has no password or hash" 0 "$(grep -c -e 'tangerine' -e 'argon2' "$work/body" || true)"
check "duplicate username 400" '400 {"detail":"Username already registered"}' \
  "$(register "{\"username\":\"$user\",\"email\":\"x$user@example.com\",\"password\":\"tangerine lantern 42\"}") $(cat "$work/body")"
check "duplicate email 400" '400 {"detail":"Email already registered"}' \
  "$(register "{\"username\":\"x$user\",\"email\":\"$user@example.com\",\"password\":\"tangerine lantern 42\"}") $(cat "$work/body")"
check "validation 422" 422 "$(register '{"username":"a"}')"

login() { curl -s -o "$work/body" -w '%{http_code}' -X POST "$base/login" -d "$1"; }
check "wrong password 400" '400 {"detail":"Incorrect username or password"}' "$(login "username=$user&password=wrong-password") $(cat "$work/body")"
check "unknown user 400" '400 {"detail":"Incorrect username or password"}' "$(login "username=nobody$user&password=wrong-password") $(cat "$work/body")"
check "form login 200" 200 "$(login "grant_type=password&username=$user&password=tangerine+lantern+42&scope=")"
check "token_type bearer" bearer "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["token_type"])' "$work/body")"
token=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["access_token"])' "$work/body")

resource() { curl -s -D "$work/headers" -o "$work/body" -w '%{http_code}' "$base/get-resource" "$@"; }
check "get-resource 200" '200 {"message":"You have access to the protected resource"}' "$(resource -H "Authorization: Bearer $token") $(cat "$work/body")"
check "no header 401" '401 {"detail":"Not authenticated"}' "$(resource) $(cat "$work/body")"
check "no header WWW-Authenticate" 1 "$(grep -ci '^www-authenticate: Bearer' "$work/headers")"
check "bad token 401" '401 {"detail":"Invalid token"}' "$(resource -H 'Authorization: Bearer x.y.z') $(cat "$work/body")"

kill -TERM "$pid"
wait "$pid" && { echo "ok   SIGTERM exit 0"; passes=$((passes + 1)); } || { echo "FAIL SIGTERM exit status $?"; failures=$((failures + 1)); }
echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
