#!/usr/bin/env bash
# What the hostile-traffic defences cost and hold, against a release build on the embedded
# default (issue 15). Three measurements:
#   1. password guesses one address gets judged per minute, with the limits on and off
#      (wrk POSTs wrong passwords to /login, cycling account names; 200 = judged, 429 = refused);
#   2. client_credentials and introspection rates with the limits on and off (the limiter must
#      cost under 5%); BENCH_ROUNDS (default 4) pairs of runs in alternating order, so drift
#      of the machine cancels, summarised as the median of the per-pair ratios;
#   3. /healthz latency from 127.0.0.2 while 1,000 slow-body sockets from 127.0.0.1 are open
#      and the server runs under `ulimit -n 1024`.
#   bench/hostile.sh            BENCH_SECONDS (default 10) per wrk run; BENCH_PARTS to run some.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS="${BENCH_SECONDS:-10}"
OUT="${BENCH_OUT:-/tmp/pramaan-hostile-$(date -u +%Y%m%d-%H%M%S).md}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/pramaan-target}"
die() { echo "bench: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }
for tool in wrk jq curl python3; do
  command -v "$tool" >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk jq curl >/dev/null; }
done

cargo build --release -q -p pramaan-server --bin pramaan
BIN="$CARGO_TARGET_DIR/release/pramaan"
WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
  local rc=$?
  set +e
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME OPEN_FILES ENV… (OPEN_FILES empty: the shell's own limit) — a server on a fresh data folder; sets URL and SERVER_PID.
start() {
  local name=$1 limit=$2; shift 2
  local log="$WORK/$name.log"
  mkdir -p "$WORK/$name"
  env PRAMAAN__DATA_DIR="$WORK/$name" PRAMAAN__LOG__FILTER=warn PRAMAAN__HTTP__WORKERS=2 \
    PRAMAAN__HTTP__SHUTDOWN_TIMEOUT_SECS=2 "$@" \
    sh -c "${limit:+ulimit -n $limit && }exec \"\$0\" serve --listen 127.0.0.1:0" "$BIN" >"$log" 2>&1 &
  SERVER_PID=$!
  URL=""
  for _ in $(seq 1 600); do
    URL=$(sed -n 's|^Pramaan is listening on \(http://[^ ]*\)$|\1|p' "$log")
    if [ -n "$URL" ] && curl -fsS -o /dev/null "$URL/readyz" 2>/dev/null; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$log" >&2; die "pramaan ($name) exited while starting"; }
    sleep 0.1
  done
  die "pramaan ($name) not ready"
}
stop() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; }
pcli() { env PRAMAAN__DATA_DIR="$WORK/$1" PRAMAAN__LOG__FILTER=warn "$BIN" "${@:2}"; }

# 1. Password guesses per minute from one address.
guesses() {
  local name=$1; shift
  start "$name" "" "$@"
  local portal
  portal=$(pcli "$name" client create --name portal --category internal --public --first-party \
    --grant authorization_code --scope openid --redirect-uri http://127.0.0.1:9/cb --json | jq -er .client_id)
  local q="response_type=code&client_id=$portal&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&scope=openid"
  q="$q&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
  curl -sS -c "$WORK/jar" -o /dev/null "$URL/authorize?$q"
  local login_page cookie csrf request
  login_page=$(curl -sS -b "$WORK/jar" -c "$WORK/jar" -L "$URL/authorize?$q")
  csrf=$(printf '%s' "$login_page" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' | head -1)
  request=$(printf '%s' "$login_page" | sed -n 's/.*name="request" value="\([^"]*\)".*/\1/p' | head -1)
  # curl writes HttpOnly cookies as comment-looking "#HttpOnly_" lines.
  cookie=$(sed 's/^#HttpOnly_//' "$WORK/jar" | awk '!/^#/ && NF >= 7 { print $6 "=" $7 }' | tail -1)
  [ -n "$csrf" ] && [ -n "$request" ] && [ -n "$cookie" ] || die "no login page"
  # Counts live in each thread's Lua state; done() reads them through the thread handles.
  cat >"$WORK/guess.lua" <<EOF
local threads = {}
function setup(thread) table.insert(threads, thread) end
judged, refused, n = 0, 0, 0
request = function()
  n = n + 1
  return wrk.format("POST", "/login", {
    ["Content-Type"] = "application/x-www-form-urlencoded", ["Cookie"] = "$cookie" },
    "csrf=$csrf&request=$request&username=nobody" .. n .. "&password=guess" .. n)
end
response = function(status)
  if status == 200 then judged = judged + 1 elseif status == 429 then refused = refused + 1 end
end
done = function()
  local j, r = 0, 0
  for _, t in ipairs(threads) do j = j + t:get("judged"); r = r + t:get("refused") end
  io.write(string.format("judged %d refused %d\n", j, r))
end
EOF
  wrk -t1 -c8 -d"${SECS}s" -s "$WORK/guess.lua" "$URL/login" >"$WORK/guess-$name.txt"
  local judged refused
  judged=$(awk '/^judged/ { print $2 }' "$WORK/guess-$name.txt")
  refused=$(awk '/^judged/ { print $4 }' "$WORK/guess-$name.txt")
  GUESS_ROWS+=("| $name | $judged | $refused | $(awk -v j="$judged" -v s="$SECS" 'BEGIN { printf "%.0f", j * 60 / s }') |")
  stop
}

# 2. Token and introspection rates, limits on and off.
rates() {
  local name=$1 kind=$2; shift 2
  start "$name" "" "$@"
  pcli "$name" client create --name bench --category private --grant client_credentials --scope registry.read \
    --introspection --access-token-ttl 3600 --json >"$WORK/client.json"
  local id secret basic one
  id=$(jq -er .client_id "$WORK/client.json"); secret=$(jq -er .client_secret "$WORK/client.json")
  basic="Basic $(printf '%s:%s' "$id" "$secret" | base64 -w0)"
  one=$(curl -sS -u "$id:$secret" -d grant_type=client_credentials "$URL/token" | jq -er .access_token)
  wrk -t1 -c64 -d2s -s bench/wrk/post.lua "$URL/token" -- "$basic" grant_type=client_credentials >/dev/null
  local t i
  t=$(wrk -t1 -c64 -d"${SECS}s" -s bench/wrk/post.lua "$URL/token" -- "$basic" grant_type=client_credentials |
    awk '/^Requests\/sec:/ { printf "%.0f", $2 }')
  i=$(wrk -t1 -c64 -d"${SECS}s" -s bench/wrk/post.lua "$URL/introspect" -- "$basic" "token=$one" |
    awk '/^Requests\/sec:/ { printf "%.0f", $2 }')
  RATE_ROWS+=("| $name | $t | $i |")
  RATES+=("$kind $t $i")
  stop
}

# 3. /healthz beside 1,000 slow bodies under ulimit -n 1024.
sockets() {
  start sockets 1024 PRAMAAN__HTTP__BODY_READ_TIMEOUT_SECS=60
  local port=${URL##*:}
  python3 - "$port" >"$WORK/sockets.txt" <<'EOF'
import socket, subprocess, sys, time
port = int(sys.argv[1])
held = []
for _ in range(1000):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.connect(("127.0.0.1", port))
    s.sendall(b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
              b"Content-Length: 1000\r\n\r\ngrant")
    held.append(s)
times = []
for _ in range(20):
    t = time.perf_counter()
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--interface", "127.0.0.2",
                          "--max-time", "10", f"http://127.0.0.1:{port}/healthz"], capture_output=True, text=True)
    times.append((time.perf_counter() - t) * 1000)
    assert out.stdout == "200", out
    time.sleep(0.05)
refused = 0
for s in held:
    s.settimeout(0.01)
    try:
        refused += s.recv(12)[9:12] == b"503"
    except OSError:
        pass
times.sort()
print(f"healthz first {times[0]:.1f} median {times[10]:.1f} max {times[-1]:.1f} ms; refused at once {refused}/1000")
EOF
  SOCKETS=$(cat "$WORK/sockets.txt")
  stop
}

# BENCH_PARTS picks what to run (default all): guesses, rates, sockets.
PARTS="${BENCH_PARTS:-guesses rates sockets}"
GUESS_ROWS=() RATE_ROWS=() RATES=() RATIOS="" SOCKETS="(not run)"
case " $PARTS " in *" guesses "*)
  guesses "limits on"
  guesses "limits off" PRAMAAN__LIMITS__ENABLED=false ;;
esac
case " $PARTS " in *" rates "*)
  # Alternating order, so a drift of the machine does not read as a cost.
  for round in $(seq 1 "${BENCH_ROUNDS:-4}"); do
    if [ $((round % 2)) = 1 ]; then
      rates "limits on ($round)" on; rates "limits off ($round)" off PRAMAAN__LIMITS__ENABLED=false
    else
      rates "limits off ($round)" off PRAMAAN__LIMITS__ENABLED=false; rates "limits on ($round)" on
    fi
  done
  RATIOS=$(printf '%s\n' "${RATES[@]}" | python3 -c '
import statistics, sys
rows = [l.split() for l in sys.stdin if l.strip()]
on = [r for r in rows if r[0] == "on"]
off = [r for r in rows if r[0] == "off"]
for col, what in ((1, "POST /token"), (2, "POST /introspect")):
    pairs = [int(a[col]) / int(b[col]) - 1 for a, b in zip(on, off)]
    print(f"- {what}: limits on against off, per pair: "
          + ", ".join(f"{p:+.1%}" for p in pairs)
          + f"; median {statistics.median(pairs):+.1%}, mean {statistics.mean(pairs):+.1%}")
') ;;
esac
case " $PARTS " in *" sockets "*) sockets ;; esac

{
  echo "# Pramaan hostile-traffic benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Release build of $(git rev-parse --short HEAD 2>/dev/null || echo '?'); $(nproc) CPUs; embedded default;"
  echo "wrk on the same machine, $SECS s per run."
  echo
  echo "## Password guesses from one address (wrk -c8, a new account name each time)"
  echo
  echo "| server | judged (200) | refused (429) | judged per minute |"
  echo "| --- | ---: | ---: | ---: |"
  printf '%s\n' "${GUESS_ROWS[@]}"
  echo
  echo "## Client credentials and introspection (wrk -c64), req/s"
  echo
  echo "| server | POST /token | POST /introspect (one token) |"
  echo "| --- | ---: | ---: |"
  printf '%s\n' "${RATE_ROWS[@]}"
  echo
  echo "$RATIOS"
  echo
  echo "## /healthz from 127.0.0.2 beside 1,000 slow bodies from 127.0.0.1, ulimit -n 1024"
  echo
  echo "$SOCKETS"
} | tee "$OUT"
echo "(written to $OUT)" >&2
