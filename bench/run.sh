#!/usr/bin/env bash
# Load benchmark: builds the release binary, starts it (SQLite by default, or
# the database URL given), registers users, and drives it with wrk, pinned to
# one core, for a bounded time per measurement. Prints a table and writes it,
# with the machine's CPU and core count, to docs/BENCHMARKS.md.
#
#   bench/run.sh [DATABASE_URL]        BENCH_SECONDS (default 10) per measurement
#
# SQLite's figures go to docs/BENCHMARKS.md, another backend's to
# docs/BENCHMARKS-<backend>.md. BENCH_ONLY=refresh (or introspect) measures
# that alone and writes nothing; BENCH_BINARY=path measures that binary
# instead of building one.
#
# Configuration is the default a user gets, except LATCHKEY_RATE_LIMITS=off
# (one load generator on one address would otherwise be throttled).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${BENCH_SECONDS:-10}
users=${BENCH_USERS:-200}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

# BENCH_BINARY: measure that binary (an earlier build, say) instead of building.
if [ -n "${BENCH_BINARY:-}" ]; then
  binary=$BENCH_BINARY
else
  cargo build --release --quiet --bin latchkey --example hash_rate
  binary=target/release/latchkey
fi
work=$(mktemp -d)
cleanup() { [ -n "${server:-}" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
database_url=${1:-"sqlite://$work/latchkey.db?mode=rwc"}
backend=${database_url%%:*}
case $backend in
  sqlite) output=docs/BENCHMARKS.md ;;
  *) output=docs/BENCHMARKS-$backend.md ;;
esac
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
cores=$(nproc)
load_core=$((cores - 1))

started=$(date +%s%N)
LATCHKEY_LISTEN="127.0.0.1:$port" LATCHKEY_DATABASE_URL="$database_url" LATCHKEY_RATE_LIMITS=off \
  "$binary" 2>"$work/server.log" &
server=$!
until curl -sf "$base/ready" >/dev/null 2>&1; do
  kill -0 "$server" 2>/dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.001
done
start_to_ready_ms=$(( ($(date +%s%N) - started) / 1000000 ))
sleep 1
idle_rss_kib=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$server/status")

rss_kib() { awk -v field="$1" '$1 == field":" {print $2}' "/proc/$server/status"; }

echo "registering $users users..." >&2
run_id=$RANDOM
seq 1 "$users" | xargs -P 4 -I{} curl -sf -o /dev/null -X POST "$base/register" -H 'Content-Type: application/json' \
  -d "{\"username\":\"u${run_id}x{}\",\"email\":\"u${run_id}x{}@bench.example\",\"password\":\"benchmark passphrase 42\"}"
seq 1 "$users" | sed "s/^/u${run_id}x/" >"$work/users"
seq 1 "$users" | xargs -P 4 -I{} curl -sf -X POST "$base/login" -d "username=u${run_id}x{}&password=benchmark+passphrase+42" \
  >"$work/logins"
# The answers arrive back to back ("}{"), in any order.
field() { python3 -c 'import json,sys; [print(json.loads(l)[sys.argv[1]]) for l in sys.stdin.read().replace("}{","}\n{").splitlines()]' "$1" <"$work/logins"; }
field access_token >"$work/tokens"
field refresh_token >"$work/refresh_tokens"
# A resource server's credentials for (g), created as an operator would.
LATCHKEY_DATABASE_URL="$database_url" "$binary" clients create bench-resource-server >"$work/client" 2>/dev/null
client_id=$(awk '/^client_id:/ {print $2}' "$work/client")
client_secret=$(awk '/^client_secret:/ {print $2}' "$work/client")
basic=$(printf '%s:%s' "$client_id" "$client_secret" | base64 -w0)

# wrk on the last core; prints "requests_per_second p50_ms p99_ms errors".
load() {
  local connections=$1; shift
  taskset -c "$load_core" wrk -t1 -c"$connections" -d"${seconds}s" --latency "$@" 2>&1 | awk '
    function ms(value) {
      if (value ~ /us$/) return value / 1000; if (value ~ /ms$/) return value + 0;
      if (value ~ /s$/) return value * 1000; return value }
    /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) }
    /Requests\/sec/ { rps = $2 } /Non-2xx/ { errors += $5 } /Socket errors/ { errors += 0 }
    END { printf "%.0f %.2f %.2f %d\n", rps, p50, p99, errors }'
}

echo "measuring (${seconds}s each)..." >&2
# BENCH_ONLY=refresh|introspect: that one figure, printed, nothing written.
case ${BENCH_ONLY:-} in
  refresh) load 16 -s bench/refresh.lua "$base" -- "$work/refresh_tokens"; exit ;;
  introspect) load 16 -s bench/introspect.lua "$base" -- "$work/tokens" "$basic"; exit ;;
esac
# (b) and (a) alternate in halves, so that a drift in what the machine's
# other tenants take weighs on both; rates are the halves' mean, latencies
# the worse half's.
combine() {
  awk '{ rps += $1; if ($2 > p50) p50 = $2; if ($3 > p99) p99 = $3; errors += $4 }
       END { printf "%.0f %.2f %.2f %d\n", rps / NR, p50, p99, errors }'
}
half=$(( (seconds + 1) / 2 ))
for round in 1 2; do
  seconds=$half load 32 "$base/health" >>"$work/health"
  seconds=$half load 32 -s bench/get_resource.lua "$base" -- "$work/tokens" >>"$work/resource"
done
read -r health_rps health_p50 health_p99 health_errors < <(combine <"$work/health")
read -r resource_rps resource_p50 resource_p99 resource_errors < <(combine <"$work/resource")
read -r login_rps login_p50 login_p99 login_errors < <(load 16 -s bench/login.lua "$base" -- "$work/users")
peak_rss_kib=$(rss_kib VmHWM)
sleep 6
settled_rss_kib=$(rss_kib VmRSS)
read -r register_rps register_p50 register_p99 register_errors < <(load 16 -s bench/register.lua "$base" -- "$run_id")

# (e): the protected route while logins saturate the hashing pool.
load 16 -s bench/login.lua "$base" -- "$work/users" >"$work/flood" &
flood=$!
sleep 1
read -r during_rps during_p50 during_p99 during_errors < <(seconds=$((seconds - 2)) load 4 -s bench/get_resource.lua "$base" -- "$work/tokens")
wait "$flood"

# (f): refresh, each connection chaining its sessions' tokens; (g): introspection.
read -r refresh_rps refresh_p50 refresh_p99 refresh_errors < <(load 16 -s bench/refresh.lua "$base" -- "$work/refresh_tokens")
read -r introspect_rps introspect_p50 introspect_p99 introspect_errors < <(load 16 -s bench/introspect.lua "$base" -- "$work/tokens" "$basic")

read -r verify_ms limit parallel < <(target/release/examples/hash_rate \
  | sed -E 's/verify_ms=([0-9.]+) cores=[0-9]+ limit_per_second=([0-9.]+) parallel_per_second=([0-9.]+)/\1 \2 \3/')

ratio() { python3 -c "print(f'{100 * $1 / $2:.0f} %')"; }
cpu=$(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}')
table=$(cat <<TABLE
| measurement | requests/s | p50 ms | p99 ms | non-2xx |
|---|---:|---:|---:|---:|
| (a) GET /get-resource, $users users' tokens | $resource_rps | $resource_p50 | $resource_p99 | $resource_errors |
| (b) GET /health (bare route) | $health_rps | $health_p50 | $health_p99 | $health_errors |
| (c) POST /login, right password | $login_rps | $login_p50 | $login_p99 | $login_errors |
| (d) POST /register, fresh users | $register_rps | $register_p50 | $register_p99 | $register_errors |
| (e) GET /get-resource during (c) | $during_rps | $during_p50 | $during_p99 | $during_errors |
| (f) POST /oauth/token, refresh_token grant | $refresh_rps | $refresh_p50 | $refresh_p99 | $refresh_errors |
| (g) POST /oauth/introspect | $introspect_rps | $introspect_p50 | $introspect_p99 | $introspect_errors |

| figure | value |
|---|---|
| (a)/(b) | $(ratio "$resource_rps" "$health_rps") |
| argon2id verify (m=19456 KiB, t=2, p=1) | $verify_ms ms |
| argon2id limit: $cores cores × 1/verify | $limit logins/s |
| (c)/limit | $(ratio "$login_rps" "$limit") |
| argon2id verifications/s with every core busy, nothing else running | $parallel |
| (c)/that | $(ratio "$login_rps" "$parallel") |
| (e) p99 | $during_p99 ms |
| idle RSS (1 s after start) | $((idle_rss_kib / 1024)) MiB ($idle_rss_kib KiB) |
| peak RSS under (c) | $((peak_rss_kib / 1024)) MiB |
| RSS 6 s after (c) ended | $((settled_rss_kib / 1024)) MiB |
| start to /ready 200 | $start_to_ready_ms ms |
TABLE
)
echo "$table"

{
  cat <<'HEAD'
# Benchmarks

Produced by `bench/run.sh` (see the README). Numbers from one run on the
machine below; the server runs with the defaults except
`LATCHKEY_RATE_LIMITS=off`, and wrk is pinned to the last core.

HEAD
  echo "Machine: $cpu, $cores cores. Backend: $backend. $seconds s per measurement. $(date -u +%Y-%m-%d)."
  echo
  echo "$table"
  cat <<'TAIL'

## Reading the figures

- On a shared or noisy machine single runs vary by 10-20 %: compare medians of
  several runs, and trust ratios measured within one run ((a)/(b), (c)/limit)
  more than absolute figures.
- With two cores, wrk takes one of them, so the server has about one core for
  (a), (b) and (d); the login limit is computed for all cores because hashing
  threads use both.
- (b) and (a) are measured in alternating halves (b, a, b, a); their rates
  are the halves' mean and their latencies the worse half's, so a change in
  load from other tenants weighs on both.
- The single-core verification time behind the limit swings most between
  runs (12.8 to 16.2 ms over nine runs on one day, as other tenants of a
  shared host come and go), and (c)/limit with it; (c)/that compares logins
  with what the cores sustain hashing alone in the same run.
- (e) runs a login flood (as (c)) and four connections on the protected route
  at the same time; its p99 is what a user of the protected route sees while
  the hashing pool is saturated.
- Micro-benchmarks of hashing, token signing and verification, and the bearer
  path: `cargo bench` (criterion).
- What changed the figures, step by step: [PERFORMANCE.md](PERFORMANCE.md).
TAIL
} >"$output"
echo "written to $output" >&2
