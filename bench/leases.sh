#!/usr/bin/env bash
# Online leases and bulk checkout, on SQLite and on PostgreSQL: lease acquire and
# heartbeat against the OIDC refresh_token grant in the same run (wrk, 32 connections,
# requests/s and p99), the time from a lease's last heartbeat to its seat being free
# again, and a 1,000-row bulk checkout staged and committed.
# Usage: bench/leases.sh [sqlite|postgres|both] [seconds-per-run]   (default both, 10)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk (Debian package)..." >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
cargo build --release --quiet --bin entitled --example bench_leases
which=${1:-both}
seconds=${2:-10}
if [ "$which" != postgres ]; then
  target/release/examples/bench_leases target/release/entitled "" "$seconds"
fi
if [ "$which" != sqlite ]; then
  pg_dir_file=$(mktemp)
  pg_url=$(ENTITLE_PG_DIR_FILE="$pg_dir_file" scripts/postgres.sh start)
  trap 'scripts/postgres.sh stop "$(cat "$pg_dir_file")"; rm -f "$pg_dir_file"' EXIT
  target/release/examples/bench_leases target/release/entitled "$pg_url" "$seconds"
fi
