#!/usr/bin/env bash
# The status-list size report (issue 7), release build: hands out TOKENS indexes (default
# 1,000,000) to one client through the server's allocator, revokes 0.1 %, 1 % and 10 % of them
# at random and then suspends the client, fetching the served list after each step.
# On SQLite, then on PostgreSQL when it answers at $PG_ADMIN_URL. The serving rate under wrk
# is in bench/http.sh ("GET status list").
#   bench/status-list.sh [TOKENS]
set -euo pipefail
cd "$(dirname "$0")/.."
TOKENS="${1:-1000000}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/pramaan-target}"
cargo build --release -q -p pramaan-integration-tests --bin status_list_size
BIN="$CARGO_TARGET_DIR/release/status_list_size"

echo "== SQLite"
env -u PRAMAAN_TEST_DATABASE_URL -u PRAMAAN_TEST_REDIS_URL "$BIN" "$TOKENS"
if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "== PostgreSQL"
  PRAMAAN_TEST_DATABASE_URL="$PG_ADMIN_URL" "$BIN" "$TOKENS"
else
  echo "PostgreSQL is not answering on 127.0.0.1:5432: skipped" >&2
fi
