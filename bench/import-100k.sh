#!/usr/bin/env bash
# Measures `pramaan user import` of 100,000 generated users with a release build, on SQLite and
# (when PostgreSQL answers at $PG_ADMIN_URL) on PostgreSQL. Target (issue 2): under 60 s each.
#   bench/import-100k.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-100000}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/pramaan-target}"
cargo build --release -q -p pramaan-server
BIN="$CARGO_TARGET_DIR/release/pramaan"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

awk -v n="$ROWS" 'BEGIN {
  print "username,display_name,phone,email,org_unit,roles";
  for (i = 0; i < n; i++) {
    org = (i % 3 == 0) ? "national/ka/blr/phc-" (i % 50) : "national/ka/blr";
    printf "staff%07d,Staff Member %d,+9198%08d,staff%d@example.org,%s,vaccinator;verifier\n", i, i, i, i, org;
  }
}' > "$WORK/users.csv"

run() { # $1 = label, $2 = database URL
  local env=(PRAMAAN__DATABASE__URL="$2" PRAMAAN__DATA_DIR="$WORK/data-$1")
  env "${env[@]}" "$BIN" org create national --name National >/dev/null
  env "${env[@]}" "$BIN" org create national/ka --name Karnataka >/dev/null
  env "${env[@]}" "$BIN" org create national/ka/blr --name Bengaluru >/dev/null
  for f in $(seq 0 49); do env "${env[@]}" "$BIN" org create "national/ka/blr/phc-$f" --name "PHC $f" >/dev/null; done
  local start end
  start=$(date +%s.%N)
  env "${env[@]}" "$BIN" user import "$WORK/users.csv"
  end=$(date +%s.%N)
  printf '%s: imported %s users in %.1f s\n' "$1" "$ROWS" "$(echo "$end - $start" | bc)"
}

run sqlite "sqlite://$WORK/bench.db"
if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  DB="pramaan_bench_$$"
  psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $DB"
  trap 'psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"; rm -rf "$WORK"' EXIT
  run postgres "${PG_ADMIN_URL%/*}/$DB"
else
  echo "postgres: not reachable at 127.0.0.1:5432, skipped"
fi
