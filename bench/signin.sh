#!/usr/bin/env bash
# Sign-in throughput through the JSON API vs the bare Argon2id rate, and server RSS.
# Usage: bench/signin.sh [seconds-per-phase]   (default 10; three rounds of each phase)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin entitled --example bench_signin
exec target/release/examples/bench_signin target/release/entitled "${1:-10}"
