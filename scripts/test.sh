#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. every Rust test on the embedded SQLite default,
#   2. the same suite again on a throwaway PostgreSQL server this script starts,
#   3. the browser tests: Debian's Chromium driven by playwright-core against entitled,
#   4. a smoke run of every fuzz target (scripts/fuzz.sh, FUZZ_SECONDS each; 0 skips it).
# Everything it needs is installed by scripts/setup-test-deps.sh and scripts/postgres.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-test-deps.sh
cargo build --bins

echo "== Rust tests on SQLite"
cargo test --workspace

echo "== Rust tests on PostgreSQL"
pg_dir_file=$(mktemp)
pg_url=$(ENTITLE_PG_DIR_FILE="$pg_dir_file" scripts/postgres.sh start)
trap 'scripts/postgres.sh stop "$(cat "$pg_dir_file")"; rm -f "$pg_dir_file"' EXIT
ENTITLE_TEST_DATABASE_URL="$pg_url" cargo test --workspace

echo "== Browser tests (Chromium)"
(cd browser && npm test --silent)

if [ "${FUZZ_SECONDS:-30}" != 0 ]; then
  echo "== Fuzzing (smoke run, ${FUZZ_SECONDS:-30}s a target)"
  FUZZ_SECONDS=${FUZZ_SECONDS:-30} scripts/fuzz.sh
fi
