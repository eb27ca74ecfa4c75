#!/usr/bin/env bash
# HTTP throughput and latency of a release build under wrk (issue 3, deliverable 9; the token
# status list of issue 7), on the embedded default (SQLite + in-memory sessions) and, when they
# answer, on PostgreSQL + Redis.
# Every rate is reported as a ratio to a bare actix-web handler (server/examples/bare.rs,
# same crate features, two workers) measured in the same run. Targets: DESIGN.md.
#   bench/http.sh
# Environment: BENCH_SECONDS (per path, default 10), BENCH_WARMUP (seconds of unrecorded load
# before each path, default 2), BENCH_CONNECTIONS (64), BENCH_THREADS (2), BENCH_MINT_SECONDS
# (seconds of token issuance that mint the distinct tokens to introspect, default
# BENCH_SECONDS + 5), BENCH_OUT (the Markdown report, default /tmp/pramaan-http-<date>.md),
# PG_ADMIN_URL, REDIS_URL, BENCH_PIN (e.g. `0:1`: the servers on CPU 0, wrk on CPU 1, so the
# load generator never takes the server's core; unset, the scheduler shares both cores).
# All traffic stays on 127.0.0.1. Any socket error or non-2xx response fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${BENCH_SECONDS:-10}"
WARMUP="${BENCH_WARMUP:-2}"
CONNS="${BENCH_CONNECTIONS:-64}"
THREADS="${BENCH_THREADS:-2}"
PIN="${BENCH_PIN:-}"
SRV=() GEN=() # command prefixes that pin the servers and wrk
if [ -n "$PIN" ]; then SRV=(taskset -c "${PIN%%:*}"); GEN=(taskset -c "${PIN##*:}"); fi
MINT_SECONDS="${BENCH_MINT_SECONDS:-$((DURATION + 5))}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
OUT="${BENCH_OUT:-/tmp/pramaan-http-$(date -u +%Y%m%d-%H%M%S).md}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/pramaan-target}"

die() { echo "bench: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
command -v wrk >/dev/null || apt_install wrk
command -v jq >/dev/null || apt_install jq

cargo build --release -q -p pramaan-server --bin pramaan --example bare
BIN="$CARGO_TARGET_DIR/release/pramaan"
BARE="$CARGO_TARGET_DIR/release/examples/bare"

WORK=$(mktemp -d)
SERVERS=()      # pids of every server started, killed on exit
PG_DB=""        # set once the database exists
REDIS_PREFIX="" # set once Redis may hold keys
cleanup() {
  local rc=$?
  set +e
  for p in "${SERVERS[@]}"; do stop "$p"; done
  if [ -n "$PG_DB" ]; then psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null; fi
  if [ -n "$REDIS_PREFIX" ]; then
    redis-cli -u "$REDIS_URL" --scan --pattern "${REDIS_PREFIX}*" | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stop PID: SIGTERM, then SIGKILL if it is still there after 5 s.
stop() {
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Latency as wrk prints it (850.00us, 1.23ms, 1.01s, 2.00m) in milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : -1
    if (f < 0) exit 1
    printf "%.2f", n * f
  }'
}

# The status of one request shaped like the load: wrk counts only statuses above 399 as
# errors, so each path is checked here to answer 2xx before it is loaded.
status_of() { curl -sS -o /dev/null -w '%{http_code}' "$@"; }
# The claims of the JWT on stdin (base64url, unpadded).
jwt_claims() {
  local p
  p=$(cut -d. -f2 | tr '_-' '/+')
  while [ $(( ${#p} % 4 )) -ne 0 ]; do p="$p="; done
  printf '%s' "$p" | base64 -d
}

# CPU accounting, in clock ticks: busy time of the whole machine (user, nice, system, steal;
# not irq and softirq, where loopback traffic is processed for whichever side sent it), and of
# one process.
TICKS=$(getconf CLK_TCK)
NCPU=$(nproc)
machine_busy() { awk '/^cpu / { print $2 + $3 + $4 + $9 }' /proc/stat; }
process_busy() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# PostgreSQL and Redis, whose work for the server is part of its cost, not a disturbance.
services_busy() {
  local p t=0
  for p in $(pgrep -x 'postgres|redis-server' || true); do
    t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}

ROWS=() # path|backend|rps|p50|p99|ratio|requests|server µs/req|services µs/req|other %
BARE_RPS=""
RUN=0
TARGET_PID="" # the server under load, for its CPU time
# measure PATH_LABEL BACKEND URL [SCRIPT LUA_ARGS…] — with NO_WARMUP=1, no warm-up.
# Besides wrk's figures it records the server's CPU time per request and the share of the
# machine used by anything but wrk and the server (another build on these cores skews a run).
measure() {
  local label=$1 backend=$2 url=$3; shift 3
  local script=() lua=()
  if [ $# -gt 0 ]; then script=(-s "$1"); shift; lua=(-- "$@"); fi
  local base=("${GEN[@]}" wrk -t"$THREADS" -c"$CONNS")
  if [ "$WARMUP" -gt 0 ] && [ "${NO_WARMUP:-0}" != 1 ]; then "${base[@]}" -d"${WARMUP}s" "${script[@]}" "$url" "${lua[@]}" >/dev/null; fi
  RUN=$((RUN + 1))
  local out="$WORK/wrk-$RUN.txt"
  local busy0 srv0 svc0 wall0 busy1 srv1 svc1 wall1
  busy0=$(machine_busy); srv0=$(process_busy "$TARGET_PID"); svc0=$(services_busy); wall0=$(date +%s.%N)
  { TIMEFORMAT='%U %S'; time "${base[@]}" -d"${DURATION}s" --latency "${script[@]}" "$url" "${lua[@]}" >"$out"; } 2>"$out.time"
  busy1=$(machine_busy); srv1=$(process_busy "$TARGET_PID"); svc1=$(services_busy); wall1=$(date +%s.%N)
  local rps p50 p99 total non2xx sockerr
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
  p50=$(awk '$1 == "50%" { print $2 }' "$out")
  p99=$(awk '$1 == "99%" { print $2 }' "$out")
  total=$(awk '/ requests in / { print $1 }' "$out")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
  sockerr=$(awk '/Socket errors:/ { s = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) s += $i; print s }' "$out")
  if [ -z "$rps" ] || [ -z "$p50" ] || [ -z "$p99" ] || [ -z "$total" ] || [ "$total" = 0 ]; then
    cat "$out" >&2; die "$label ($backend): cannot read wrk's output"
  fi
  if [ "${non2xx:-0}" != 0 ] || [ "${sockerr:-0}" != 0 ]; then
    cat "$out" >&2; die "$label ($backend): ${non2xx:-0} non-2xx responses, ${sockerr:-0} socket errors"
  fi
  local restarts
  restarts=$(awk '/^post-each: files restarted/ { print $4 }' "$out")
  if [ "${restarts:-0}" != 0 ]; then label="$label (tokens REUSED: files restarted $restarts times)"; fi
  p50=$(to_ms "$p50"); p99=$(to_ms "$p99")
  [ -n "$BARE_RPS" ] || BARE_RPS=$rps
  local ratio
  ratio=$(awk -v a="$rps" -v b="$BARE_RPS" 'BEGIN { printf "%.2f", a / b }')
  local wrk_cpu per_req svc svc_req other
  wrk_cpu=$(tail -n 1 "$out.time" | awk '{ print $1 + $2 }')
  per_req=$(awk -v s="$((srv1 - srv0))" -v t="$TICKS" -v n="$total" 'BEGIN { printf "%.1f", 1e6 * s / t / n }')
  svc=$((svc1 - svc0)); [ "$svc" -ge 0 ] || svc=0
  svc_req=$(awk -v s="$svc" -v t="$TICKS" -v n="$total" 'BEGIN { printf "%.1f", 1e6 * s / t / n }')
  other=$(awk -v b="$((busy1 - busy0 - svc))" -v s="$((srv1 - srv0))" -v t="$TICKS" -v w="$wrk_cpu" \
    -v d="$(awk -v a="$wall0" -v b="$wall1" 'BEGIN { print b - a }')" -v c="$NCPU" \
    'BEGIN { o = (b - s) / t - w; if (o < 0) o = 0; printf "%.0f", 100 * o / (d * c) }')
  ROWS+=("$label|$backend|$rps|$p50|$p99|$ratio|$total|$per_req|$svc_req|$other")
  printf '  %-44s %-15s %7.0f req/s  p50 %6s ms  p99 %6s ms  %s× bare  CPU/req %5s µs + %4s µs services  other load %s%%\n' \
    "$label" "$backend" "$rps" "$p50" "$p99" "$ratio" "$per_req" "$svc_req" "$other" >&2
  if [ "$other" -gt 10 ]; then
    note "WARNING: other processes used $other% of the machine during this run; its figures are skewed"
  fi
}

BARE_PORT=$(free_port)
"${SRV[@]}" "$BARE" "$BARE_PORT" >"$WORK/bare.log" 2>&1 &
BARE_PID=$!
SERVERS+=("$BARE_PID")
for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$BARE_PORT/" 2>/dev/null && break; sleep 0.1; done
[ "$(status_of "http://127.0.0.1:$BARE_PORT/")" = 200 ] || die "the bare handler does not answer"

RSS=()     # backend|VmRSS|VmHWM
MINTED=()  # backend|tokens minted for the distinct-token run
TARGETS=() # lines of the verdict
SERVER_PID=""
URL=""
# start_pramaan BACKEND ENV… — serves on a free port, waits for /readyz; sets SERVER_PID, URL.
start_pramaan() {
  local backend=$1; shift
  local log="$WORK/pramaan-$backend.log"
  env "$@" "${SRV[@]}" "$BIN" serve --listen 127.0.0.1:0 >"$log" 2>&1 &
  SERVER_PID=$!
  SERVERS+=("$SERVER_PID")
  URL=""
  for _ in $(seq 1 600); do
    URL=$(sed -n 's|^Pramaan is listening on \(http://[^ ]*\)$|\1|p' "$log")
    if [ -n "$URL" ] && curl -fsS -o /dev/null "$URL/readyz" 2>/dev/null; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$log" >&2; die "pramaan ($backend) exited while starting"; }
    sleep 0.1
  done
  cat "$log" >&2
  die "pramaan ($backend) not ready within 60 s"
}

stop_pramaan() {
  stop "$SERVER_PID"
  local left=() p
  for p in "${SERVERS[@]}"; do [ "$p" = "$SERVER_PID" ] || left+=("$p"); done
  SERVERS=("${left[@]}")
}

# bench_backend BACKEND ENV… — everything measured against one Pramaan.
bench_backend() {
  local backend=$1; shift
  local penv=(PRAMAAN__LOG__FILTER=warn PRAMAAN__HTTP__WORKERS=2 PRAMAAN__HTTP__SHUTDOWN_TIMEOUT_SECS=2 "$@")
  note "$backend: starting"
  start_pramaan "$backend" "${penv[@]}"

  # A client for the load, registered with the CLI on the same database and data dir. Its
  # tokens live an hour so pre-minted ones outlast any BENCH_SECONDS.
  env "${penv[@]}" "$BIN" client create --name bench --grant client_credentials --scope 'registry.read' \
    --introspection --access-token-ttl 3600 --json >"$WORK/client-$backend.json"
  local id secret basic
  id=$(jq -er .client_id "$WORK/client-$backend.json")
  secret=$(jq -er .client_secret "$WORK/client-$backend.json")
  # RFC 6749 §2.3.1 form-encodes id and secret before base64; both are base64url already.
  basic="Basic $(printf '%s:%s' "$id" "$secret" | base64 -w0)"
  local grant="grant_type=client_credentials"

  BARE_RPS=""
  TARGET_PID=$BARE_PID
  measure "bare handler GET /" "$backend" "http://127.0.0.1:$BARE_PORT/"
  TARGET_PID=$SERVER_PID

  [ "$(status_of "$URL/jwks")" = 200 ] || die "GET /jwks does not answer 200"
  measure "GET /jwks" "$backend" "$URL/jwks"

  local doc code
  for doc in /.well-known/openid-configuration /.well-known/oauth-authorization-server; do
    code=$(status_of "$URL$doc")
    case "$code" in
      200) measure "GET $doc" "$backend" "$URL$doc" ;;
      404) note "$backend: GET $doc answers 404 (not implemented yet), skipped"
           ROWS+=("GET $doc|$backend|skipped: 404||||||||") ;;
      *) die "GET $doc answers $code" ;;
    esac
  done

  code=$(status_of -u "$id:$secret" -d "$grant" "$URL/token")
  [ "$code" = 200 ] || die "POST /token (client_credentials) answers $code"
  measure "POST /token client_credentials" "$backend" "$URL/token" bench/wrk/post.lua "$basic" "$grant"

  # The status list a token names (issue 7): after the load above, its client's list 0 holds
  # the indexes of every token minted so far. Target: at least half the discovery rate.
  local list_uri
  list_uri=$(curl -sS -u "$id:$secret" -d "$grant" "$URL/token" | jq -er .access_token | jwt_claims |
    jq -er .status.status_list.uri)
  [ "$(status_of "$list_uri")" = 200 ] || die "GET $list_uri does not answer 200"
  measure "GET status list" "$backend" "$list_uri"

  local one
  one=$(curl -sS -u "$id:$secret" -d "$grant" "$URL/token" | jq -er .access_token)
  code=$(status_of -u "$id:$secret" -d "token=$one" "$URL/introspect")
  case "$code" in
    200)
      curl -sS -u "$id:$secret" -d "token=$one" "$URL/introspect" | jq -e '.active == true' >/dev/null ||
        die "POST /introspect says a fresh token is not active"
      measure "POST /introspect one token repeated" "$backend" "$URL/introspect" \
        bench/wrk/post.lua "$basic" "token=$one"
      # Distinct tokens: verified claims are cached per token, so each request must carry a
      # token never introspected before — a pool larger than the run, minted by wrk itself,
      # read once through (no warm-up, which would use them up).
      "${GEN[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${MINT_SECONDS}s" -s bench/wrk/mint.lua "$URL/token" -- \
        "$basic" "$grant" "$WORK/tokens" >"$WORK/mint.txt"
      local minted
      minted=$( (cat "$WORK"/tokens.* 2>/dev/null || true) | wc -l)
      [ "$minted" -gt 0 ] || { cat "$WORK/mint.txt" >&2; die "$backend: no token minted for the distinct-token run"; }
      note "$backend: minted $minted tokens for the distinct-token run"
      NO_WARMUP=1 measure "POST /introspect distinct tokens" "$backend" "$URL/introspect" \
        bench/wrk/post-each.lua "$basic" "token=" "$WORK/tokens"
      MINTED+=("$backend|$minted")
      rm -f "$WORK"/tokens.*
      ;;
    404)
      note "$backend: POST /introspect answers 404 (not implemented yet), skipped"
      ROWS+=("POST /introspect one token repeated|$backend|skipped: 404||||||||")
      ROWS+=("POST /introspect distinct tokens|$backend|skipped: 404||||||||")
      ;;
    *) die "POST /introspect answers $code" ;;
  esac

  local rss hwm
  rss=$(awk '/^VmRSS:/ { print int($2 / 1024) }' "/proc/$SERVER_PID/status")
  hwm=$(awk '/^VmHWM:/ { print int($2 / 1024) }' "/proc/$SERVER_PID/status")
  RSS+=("$backend|$rss|$hwm")
  note "$backend: resident set after the load ${rss} MB (peak ${hwm} MB)"
  stop_pramaan
}

bench_backend sqlite+memory PRAMAAN__DATA_DIR="$WORK/data-sqlite"

if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && redis-cli -u "$REDIS_URL" ping 2>/dev/null | grep -q PONG; then
  DB="pramaan_bench_$$"
  psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $DB"
  PG_DB=$DB
  REDIS_PREFIX="pramaan-bench-$$:"
  bench_backend postgres+redis PRAMAAN__DATA_DIR="$WORK/data-pg" PRAMAAN__DATABASE__URL="${PG_ADMIN_URL%/*}/$DB" \
    PRAMAAN__SESSIONS__BACKEND=redis PRAMAAN__SESSIONS__REDIS_URL="$REDIS_URL" \
    PRAMAAN__SESSIONS__KEY_PREFIX="$REDIS_PREFIX"
else
  note "postgres+redis: PostgreSQL (127.0.0.1:5432) or Redis ($REDIS_URL) not reachable, skipped"
fi

# The raw ES256 verification rate, from the criterion benchmark when it has been run
# (`cargo bench -p pramaan-server --bench tokens`): one thread, as criterion measures it.
VERIFY_RPS=""
estimates="$CARGO_TARGET_DIR/criterion/verify_jwt_ES256/new/estimates.json"
if [ -f "$estimates" ]; then
  VERIFY_RPS=$(jq -r '1e9 / .mean.point_estimate | floor' "$estimates")
fi

verdict() { # ok? text
  if [ "$1" = 1 ]; then TARGETS+=("- met: $2"); else TARGETS+=("- **NOT met**: $2"); fi
}
for row in "${ROWS[@]}"; do
  IFS='|' read -r label backend rps p50 p99 ratio _ _ _ _ <<<"$row"
  [ -n "$ratio" ] || continue
  pct=$(awk -v r="$ratio" 'BEGIN { printf "%.0f", r * 100 }')
  case "$label" in
    "GET /jwks" | "GET /.well-known/"*)
      verdict "$(awk -v r="$ratio" 'BEGIN { print (r >= 0.60) }')" "$label ($backend) ≥ 60% of bare: $pct%" ;;
    "POST /token client_credentials")
      verdict "$(awk -v r="$ratio" -v p="$p99" 'BEGIN { print (r >= 0.30 && p < 20) }')" \
        "$label ($backend) ≥ 30% of bare and p99 < 20 ms at $CONNS connections: $pct%, p99 $p99 ms" ;;
    "GET status list")
      disc=""
      for other in "${ROWS[@]}"; do
        IFS='|' read -r olabel obackend orps _ <<<"$other"
        if [ "$olabel" = "GET /.well-known/openid-configuration" ] && [ "$obackend" = "$backend" ]; then disc=$orps; fi
      done
      if [ -n "$disc" ]; then
        dpct=$(awk -v a="$rps" -v b="$disc" 'BEGIN { printf "%.0f", 100 * a / b }')
        verdict "$(awk -v a="$rps" -v b="$disc" 'BEGIN { print (a >= 0.5 * b) }')" \
          "$label ($backend) ≥ 50% of the discovery rate: $dpct%"
      fi ;;
    "POST /introspect one token repeated")
      verdict "$(awk -v r="$ratio" 'BEGIN { print (r >= 0.40) }')" "$label ($backend) ≥ 40% of bare: $pct%" ;;
    *REUSED*)
      TARGETS+=("- unknown: $label ($backend) — raise BENCH_MINT_SECONDS so no token is sent twice") ;;
    "POST /introspect distinct tokens")
      if [ -n "$VERIFY_RPS" ]; then
        vpct=$(awk -v a="$rps" -v b="$VERIFY_RPS" 'BEGIN { printf "%.0f", 100 * a / b }')
        verdict "$(awk -v a="$rps" -v b="$VERIFY_RPS" 'BEGIN { print (a >= 0.70 * b) }')" \
          "$label ($backend) ≥ 70% of the raw ES256 verify rate ($VERIFY_RPS/s, criterion, one thread): $vpct%"
      else
        TARGETS+=("- unknown: $label ($backend) — run \`cargo bench -p pramaan-server --bench tokens\` for the raw ES256 verify rate")
      fi ;;
  esac
done
for r in "${RSS[@]}"; do
  IFS='|' read -r backend rss hwm <<<"$r"
  verdict "$( [ "$hwm" -lt 200 ] && echo 1 || echo 0)" "resident set ($backend) < 200 MB: ${rss} MB after the load, peak ${hwm} MB"
done

{
  echo "# Pramaan HTTP benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "wrk $(wrk -v 2>&1 | awk 'NR == 1 { print $2 }'), $THREADS threads, $CONNS connections, ${DURATION} s per path" \
    "(after ${WARMUP} s of warm-up), keep-alive, 127.0.0.1; $(nproc) CPUs; release build of" \
    "$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+changes');" \
    "Pramaan and the bare handler with 2 workers, log filter warn$([ -n "$PIN" ] && echo "; servers pinned to CPU ${PIN%%:*}, wrk to CPU ${PIN##*:}")."
  echo
  echo "| path | backend | requests/s | p50 (ms) | p99 (ms) | ratio to bare | requests | server CPU µs/req | PG+Redis CPU µs/req | other load |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for row in "${ROWS[@]}"; do
    IFS='|' read -r label backend rps p50 p99 ratio total per_req svc_req other <<<"$row"
    if [ -n "$ratio" ]; then rps=$(printf '%.0f' "$rps"); other="$other%"; fi
    echo "| $label | $backend | $rps | $p50 | $p99 | $ratio | $total | $per_req | $svc_req | $other |"
  done
  echo
  echo "Server CPU µs/req: user + system time of the server process during the run, per request;"
  echo "PG+Redis: the same for the postgres and redis-server processes."
  echo "Other load: share of all $NCPU CPUs used by anything but wrk, the server, PostgreSQL and Redis"
  echo "(softirq time, where loopback packets are processed, is not counted at all)."
  echo
  for m in "${MINTED[@]}"; do
    IFS='|' read -r backend minted <<<"$m"
    echo "Distinct tokens ($backend): a pool of $minted, each sent at most once unless marked REUSED."
  done
  echo
  echo "Resident set of Pramaan after the load (VmRSS; peak VmHWM):"
  for r in "${RSS[@]}"; do
    IFS='|' read -r backend rss hwm <<<"$r"
    echo "- $backend: $rss MB (peak $hwm MB)"
  done
  echo
  echo "Targets (DESIGN.md):"
  printf '%s\n' "${TARGETS[@]}"
} >"$OUT"
echo
cat "$OUT"
echo
echo "(written to $OUT)"
