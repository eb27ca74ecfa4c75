#!/usr/bin/env bash
# The reset-campaign benchmark (issue 6), release build: creates USERS users (default
# 1,000,000), launches a campaign over all of them and reports the time until every one is
# flagged and cut off, then the outbox drain rate against a local SMTP sink for DRAIN seconds.
# On SQLite, then on PostgreSQL when it answers at $PG_ADMIN_URL. Target: under 30 s on
# PostgreSQL.
#   bench/campaign.sh [USERS] [DRAIN]
set -euo pipefail
cd "$(dirname "$0")/.."
USERS="${1:-1000000}"
DRAIN="${2:-20}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/pramaan-target}"
cargo build --release -q -p pramaan-integration-tests --bin campaign_bench
BIN="$CARGO_TARGET_DIR/release/campaign_bench"

echo "== SQLite"
env -u PRAMAAN_TEST_DATABASE_URL "$BIN" "$USERS" "$DRAIN"
if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "== PostgreSQL"
  PRAMAAN_TEST_DATABASE_URL="$PG_ADMIN_URL" "$BIN" "$USERS" "$DRAIN"
else
  echo "PostgreSQL is not answering on 127.0.0.1:5432: skipped" >&2
fi
