#!/usr/bin/env bash
# Password + authenticator-app logins against a release build (issue 4), on the embedded
# default (SQLite + in-memory sessions) and, when they answer, on PostgreSQL + Redis.
# DESIGN.md: "argon2 is the only real cost: ≥ 85% of the raw argon2id rate; token traffic p99
# stays < 50 ms while logins saturate".
#   bench/login.sh
# Each login is what a browser does: GET /authorize, the login page, POST the password, the
# second-factor page, POST the app's code (computed from the key shown at the account's first
# login), and the redirect with a code. The raw rate is argon2id verifications per second with
# the server's parameters, one per core at once, measured by the same program while the server
# idles. While logins run, wrk sends client_credentials token requests (BENCH_TOKEN_CONNECTIONS,
# default 8) and its p99 is reported.
# Environment: BENCH_USERS (accounts, default 2000; each can sign in once per 30-second TOTP
# step), BENCH_LOGIN_CONCURRENCY (browsers at once, default 8), BENCH_SECONDS (default 20),
# BENCH_TOKEN_CONNECTIONS, BENCH_OUT, PG_ADMIN_URL, REDIS_URL.
set -euo pipefail
cd "$(dirname "$0")/.."

USERS="${BENCH_USERS:-2000}"
CONC="${BENCH_LOGIN_CONCURRENCY:-8}"
SECS="${BENCH_SECONDS:-20}"
TOKEN_CONNS="${BENCH_TOKEN_CONNECTIONS:-8}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
OUT="${BENCH_OUT:-/tmp/pramaan-login-$(date -u +%Y%m%d-%H%M%S).md}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/pramaan-target}"

die() { echo "bench: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }
command -v wrk >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk jq >/dev/null; }
command -v jq >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null; }

cargo build --release -q -p pramaan-server --bin pramaan --example login_load
BIN="$CARGO_TARGET_DIR/release/pramaan"
GEN="$CARGO_TARGET_DIR/release/examples/login_load"

WORK=$(mktemp -d)
SERVER_PID="" PG_DB="" REDIS_PREFIX=""
cleanup() {
  local rc=$?
  set +e
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  [ -n "$PG_DB" ] && psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null
  if [ -n "$REDIS_PREFIX" ]; then
    redis-cli -u "$REDIS_URL" --scan --pattern "${REDIS_PREFIX}*" | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ROWS=() RSS_ROWS=()
rss_mb() { awk '/^VmRSS:/ { print int($2 / 1024) }' "/proc/$1/status"; }
# bench_backend BACKEND ENV… — one server, its accounts, the raw rate, the logins.
bench_backend() {
  local backend=$1; shift
  # The generator's browsers all come from 127.0.0.1: the per-address limits would refuse
  # them (bench/hostile.sh measures the limits themselves).
  local penv=(PRAMAAN__LOG__FILTER=warn PRAMAAN__HTTP__SHUTDOWN_TIMEOUT_SECS=2 PRAMAAN__LIMITS__ENABLED=false "$@")
  local log="$WORK/pramaan-$backend.log"
  env "${penv[@]}" "$BIN" serve --listen 127.0.0.1:0 >"$log" 2>&1 &
  SERVER_PID=$!
  local url=""
  for _ in $(seq 1 600); do
    url=$(sed -n 's|^Pramaan is listening on \(http://[^ ]*\)$|\1|p' "$log")
    if [ -n "$url" ] && curl -fsS -o /dev/null "$url/readyz" 2>/dev/null; then break; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$log" >&2; die "pramaan ($backend) exited while starting"; }
    sleep 0.1
  done
  [ -n "$url" ] || die "pramaan ($backend) not ready"
  local portal token
  portal=$(env "${penv[@]}" "$BIN" client create --name portal --public --first-party \
    --grant authorization_code --scope openid --redirect-uri http://127.0.0.1:9/cb --json | jq -er .client_id)
  env "${penv[@]}" "$BIN" client create --name partner --grant client_credentials --scope registry.read \
    --json >"$WORK/partner.json"
  token="$(jq -er .client_id "$WORK/partner.json"):$(jq -er .client_secret "$WORK/partner.json")"
  env "${penv[@]}" "$GEN" seed "$USERS" >&2
  local raw
  raw=$(env "${penv[@]}" "$GEN" argon2 8 | awk '/verifications/ { print $NF }')
  note "$backend: raw argon2id $raw/s; setting up $USERS apps, then 2 × $SECS s of logins"
  rm -f "$WORK/mark"
  # Resident memory: before, every second while logins run, and after 10 idle seconds.
  local rss_before
  rss_before=$(rss_mb "$SERVER_PID")
  ( while kill -0 "$SERVER_PID" 2>/dev/null; do rss_mb "$SERVER_PID" >>"$WORK/rss.txt"; sleep 1; done ) &
  local sampler=$!
  BENCH_MARK="$WORK/mark" BENCH_SERVER_PID="$SERVER_PID" "$GEN" run "$url" "$portal" "$USERS" "$CONC" "$SECS" >"$WORK/run.txt" &
  local gen=$!
  while [ ! -e "$WORK/mark" ]; do kill -0 "$gen" 2>/dev/null || { wait "$gen"; die "login_load failed"; }; sleep 0.2; done
  local basic
  basic="Basic $(printf '%s' "$token" | base64 -w0)"
  wrk -t1 -c"$TOKEN_CONNS" -d"${SECS}s" --latency -s bench/wrk/post.lua "$url/token" -- "$basic" \
    "grant_type=client_credentials" >"$WORK/wrk.txt"
  wait "$gen" || die "login_load failed"
  kill "$sampler" 2>/dev/null || true
  local rss_max rss_idle
  rss_max=$(sort -n "$WORK/rss.txt" | tail -1)
  rm -f "$WORK/rss.txt"
  sleep 10
  rss_idle=$(rss_mb "$SERVER_PID")
  RSS_ROWS+=("| $backend | $rss_before | $rss_max | $rss_idle |")
  cat "$WORK/run.txt" >&2
  # field NAME WINDOW: the value of "NAME:" in the first (alone) or second (beside) window.
  field() { awk -v k="$1:" -v w="$2" '/^# / { n++ } n == w && index($0, k) == 1 { print $NF }' "$WORK/run.txt"; }
  local tok_rps tok_p99 ratio fails
  tok_rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$WORK/wrk.txt")
  tok_p99=$(awk '$1 == "99%" { print $2 }' "$WORK/wrk.txt")
  ratio=$(awk -v a="$(field logins/s 1)" -v b="$raw" 'BEGIN { printf "%.0f%%", 100 * a / b }')
  fails=$(( $(field failures 1) + $(field failures 2) ))
  ROWS+=("| $backend | $raw | $(field logins/s 1) | $ratio | $(field "p50 ms" 1) | $(field "p99 ms" 1) | $(field "server cpu ms/login" 1) | $(field "generator cpu ms/login" 1) | $(field logins/s 2) | $(field "p99 ms" 2) | $tok_rps | $tok_p99 | $fails |")
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
}

bench_backend sqlite+memory PRAMAAN__DATA_DIR="$WORK/data-sqlite"
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1; then
  PG_DB="pramaan_login_$$"
  psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $PG_DB"
  REDIS_PREFIX="pramaan-login-$$:"
  bench_backend postgres+redis PRAMAAN__DATA_DIR="$WORK/data-pg" PRAMAAN__DATABASE__URL="${PG_ADMIN_URL%/*}/$PG_DB" \
    PRAMAAN__SESSIONS__BACKEND=redis PRAMAAN__SESSIONS__REDIS_URL="$REDIS_URL" \
    PRAMAAN__SESSIONS__KEY_PREFIX="$REDIS_PREFIX"
else
  note "postgres+redis: PostgreSQL or Redis not reachable, skipped"
fi

{
  echo "# Pramaan login benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Release build of $(git rev-parse --short HEAD 2>/dev/null || echo '?'); $(nproc) CPUs; $USERS accounts with an"
  echo "authenticator app, $CONC browsers at once."
  echo
  echo "Two windows of $SECS s each: logins alone, then logins beside wrk -t1 -c$TOKEN_CONNS on client_credentials."
  echo
  echo "| backend | raw argon2id/s | logins/s alone | ratio | login p50 ms | login p99 ms | server CPU ms/login | generator CPU ms/login | logins/s beside tokens | login p99 ms beside | token req/s beside | token p99 | failed logins |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "Target (DESIGN.md): logins ≥ 85% of the raw argon2id rate; token p99 < 50 ms while logins saturate."
  echo
  echo "Resident memory of the server, MB (issue 15: < 300 while logins saturate, near the baseline after):"
  echo
  echo "| backend | before | most while logins run | 10 s after |"
  echo "| --- | ---: | ---: | ---: |"
  printf '%s\n' "${RSS_ROWS[@]}"
} | tee "$OUT"
echo "(written to $OUT)" >&2
