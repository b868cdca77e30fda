#!/usr/bin/env bash
# Throughput against the number of instances: 1, 2 and 3 latchkey processes
# on one PostgreSQL (or MariaDB) database and Redis, behind Debian's haproxy,
# driven by wrk through haproxy (and, for reference, one instance directly).
# Prints a table and writes it to docs/BENCHMARKS-scale.md.
#
#   bench/scale.sh DATABASE_URL        BENCH_SECONDS (default 10) per measurement
#
# BENCH_BINARY=path measures that binary instead of building one;
# LATCHKEY_TEST_REDIS_URL (default redis://127.0.0.1:6379). The instances run
# with the defaults except LATCHKEY_RATE_LIMITS=off and a shared public URL.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${BENCH_SECONDS:-10}
users=${BENCH_USERS:-200}
database_url=${1:?usage: bench/scale.sh DATABASE_URL (postgres:// or mysql://)}
redis_url=${LATCHKEY_TEST_REDIS_URL:-redis://127.0.0.1:6379}
for tool in wrk haproxy curl python3; do
  command -v "$tool" >/dev/null || { echo "$tool is needed (apt-get install wrk haproxy curl python3)" >&2; exit 1; }
done
if [ -n "${BENCH_BINARY:-}" ]; then
  binary=$BENCH_BINARY
else
  cargo build --release --quiet --bin latchkey
  binary=target/release/latchkey
fi
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
front=$(free_port)
ports=("$(free_port)" "$(free_port)" "$(free_port)")
run_id=$RANDOM

for index in 0 1 2; do
  port=${ports[$index]}
  env -i PATH="$PATH" LATCHKEY_LISTEN="127.0.0.1:$port" LATCHKEY_DATABASE_URL="$database_url" \
    LATCHKEY_REDIS_URL="$redis_url" LATCHKEY_REDIS_PREFIX="latchkey-bench-$run_id:" \
    LATCHKEY_PUBLIC_URL="http://127.0.0.1:$front" LATCHKEY_RATE_LIMITS=off LATCHKEY_LOG=warn \
    "$binary" 2>"$work/instance$index.log" &
  pids+=($!)
  # One after the other: the first migrates a fresh database.
  until curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1; do
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "$work/instance$index.log"; exit 1; }
    sleep 0.05
  done
done

base="http://127.0.0.1:${ports[0]}"
echo "registering $users users..." >&2
seq 1 "$users" | xargs -P 4 -I{} curl -sf -o /dev/null -X POST "$base/register" -H 'Content-Type: application/json' \
  -d "{\"username\":\"s${run_id}x{}\",\"email\":\"s${run_id}x{}@bench.example\",\"password\":\"benchmark passphrase 42\"}"
# Two sessions per user: one set of refresh tokens per measurement of refresh.
for round in 1 2 3 4; do
  seq 1 "$users" | xargs -P 4 -I{} curl -sf -X POST "$base/login" -d "username=s${run_id}x{}&password=benchmark+passphrase+42" \
    >"$work/logins$round"
done
# The answers arrive back to back ("}{"), in any order.
field() { python3 -c 'import json,sys; [print(json.loads(l)[sys.argv[1]]) for l in sys.stdin.read().replace("}{","}\n{").splitlines()]' "$1"; }
field access_token <"$work/logins1" >"$work/tokens"

# haproxy in front of the first `count` instances, until stopped.
haproxy_for() {
  local count=$1
  {
    printf 'global\n  maxconn 4096\ndefaults\n  mode http\n  timeout connect 1s\n  timeout client 30s\n  timeout server 30s\n'
    printf 'frontend api\n  bind 127.0.0.1:%s\n  default_backend latchkey\n' "$front"
    printf 'backend latchkey\n  balance roundrobin\n  http-reuse safe\n'
    for index in $(seq 0 $((count - 1))); do
      printf '  server i%s 127.0.0.1:%s\n' "$index" "${ports[$index]}"
    done
  } >"$work/haproxy.cfg"
  haproxy -db -f "$work/haproxy.cfg" 2>"$work/haproxy.log" &
  haproxy_pid=$!
  until curl -sf "http://127.0.0.1:$front/health" >/dev/null 2>&1; do sleep 0.05; done
}

# wrk on the last core; prints "requests_per_second p99_ms errors".
load() {
  local connections=$1; shift
  taskset -c "$(($(nproc) - 1))" wrk -t1 -c"$connections" -d"${seconds}s" --latency "$@" 2>&1 | awk '
    function ms(value) {
      if (value ~ /us$/) return value / 1000; if (value ~ /ms$/) return value + 0;
      if (value ~ /s$/) return value * 1000; return value }
    /^ +99%/ { p99 = ms($2) } /Requests\/sec/ { rps = $2 } /Non-2xx/ { errors += $5 }
    END { printf "%.0f %.2f %d\n", rps, p99, errors }'
}

echo "measuring (${seconds}s each)..." >&2
rows=()
measure() { # label, base URL, refresh-token round
  local label=$1 url=$2 round=$3
  field refresh_token <"$work/logins$round" >"$work/refresh$round"
  read -r bearer_rps bearer_p99 bearer_errors < <(load 32 -s bench/get_resource.lua "$url" -- "$work/tokens")
  read -r refresh_rps refresh_p99 refresh_errors < <(load 16 -s bench/refresh.lua "$url" -- "$work/refresh$round")
  rows+=("| $label | $bearer_rps | $bearer_p99 | $bearer_errors | $refresh_rps | $refresh_p99 | $refresh_errors |")
}
measure "1 instance, direct" "$base" 1
for count in 1 2 3; do
  haproxy_for "$count"
  measure "$count behind haproxy" "http://127.0.0.1:$front" $((count + 1))
  kill "$haproxy_pid"; wait "$haproxy_pid" 2>/dev/null || true
done

cpu=$(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}')
table=$(
  echo "| instances | GET /get-resource req/s | p99 ms | non-2xx | refresh req/s | p99 ms | non-2xx |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
)
echo "$table"
{
  cat <<'HEAD'
# Benchmarks: instances

Produced by `bench/scale.sh DATABASE_URL`: up to three latchkey processes on
one database and Redis, behind haproxy (round robin, connection reuse),
driven by wrk through haproxy, 32 connections on the bearer route and 16
chaining refresh tokens. The first row is one instance without haproxy.

HEAD
  echo "Machine: $cpu, $(nproc) cores. Database: ${database_url%%:*}. $seconds s per measurement. $(date -u +%Y-%m-%d)."
  echo
  echo "$table"
  cat <<'TAIL'

## Reading the figures

- Every process here shares the same cores: wrk (pinned to the last core),
  haproxy, the instances and the database. Throughput grows with instances
  only when they get cores of their own; on a machine where the cores are
  already busy, more instances share the same CPU time and the figures show
  haproxy's cost instead. Run it where instances have their own cores to see
  the growth.
- Instances share no state but the database and Redis: a request may land on
  any of them (revocation reaches every instance within the poll interval,
  250 ms by default; `scripts/scale-out.sh` checks it).
TAIL
} >docs/BENCHMARKS-scale.md
echo "written to docs/BENCHMARKS-scale.md" >&2
