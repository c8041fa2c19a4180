#!/usr/bin/env bash
# User management at 100,000 users in one organization, on SQLite and on PostgreSQL:
# stage + commit of 1,000-row CSV files (median of 7), member list/search p50/p99, SCIM
# lookups, a 1,000-operation /Bulk, and a SCIM Group of 100,000 members.
# Usage: bench/users.sh [sqlite|postgres|both]   (default both)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin entitled --example bench_users
which=${1:-both}
if [ "$which" != postgres ]; then
  target/release/examples/bench_users target/release/entitled
fi
if [ "$which" != sqlite ]; then
  pg_dir_file=$(mktemp)
  pg_url=$(ENTITLE_PG_DIR_FILE="$pg_dir_file" scripts/postgres.sh start)
  trap 'scripts/postgres.sh stop "$(cat "$pg_dir_file")"; rm -f "$pg_dir_file"' EXIT
  target/release/examples/bench_users target/release/entitled "$pg_url"
fi
