#!/usr/bin/env bash
# entitle-license's verification of a license file against a bare Ed25519 verification
# of the same signed bytes (goal: at most 1.5 times). Results in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --release -p entitle-license --features sign --example bench_verify
