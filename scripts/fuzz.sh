#!/usr/bin/env bash
# Fuzzes every parser that takes outside input (fuzz/fuzz_targets: the CSV reader and row
# classifier, SCIM filters and PATCH bodies, JSON and form bodies, JWS tokens) with
# cargo-fuzz and libFuzzer on nightly Rust, each from its seed corpus in
# fuzz/corpus/<target> for FUZZ_SECONDS (default 40) seconds.
#
#   scripts/fuzz.sh               every target
#   scripts/fuzz.sh scim_filter   one
#
# Built without a sanitizer: the code is safe Rust, so what is looked for is a panic,
# an endless loop or unbounded memory, which libFuzzer catches on its own (and the build
# takes half the time). A crash fails the run and leaves its input in
# fuzz/artifacts/<target>/: make it a regression test next to the parser, then fix it.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-40}
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzzing needs nightly Rust (rustup toolchain install nightly)" >&2
  exit 1
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi

targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
cargo +nightly fuzz build --sanitizer none
for target in "${targets[@]}"; do
  # New inputs go to a scratch directory: the committed corpus stays the seeds.
  scratch=$(mktemp -d)
  echo "== fuzzing $target for ${seconds}s"
  status=0
  cargo +nightly fuzz run --sanitizer none "$target" "$scratch" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$scratch.log" 2>&1 || status=$?
  grep -E '^(Done|stat::number_of_executed_units|INFO: seed corpus)' "$scratch.log" || true
  if [ "$status" != 0 ]; then
    tail -n 40 "$scratch.log" >&2
    echo "fuzz target $target failed; its input is in fuzz/artifacts/$target/" >&2
    rm -rf "$scratch" "$scratch.log"
    exit 1
  fi
  rm -rf "$scratch" "$scratch.log"
done
