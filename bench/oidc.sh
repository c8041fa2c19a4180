#!/usr/bin/env bash
# entitle's OpenID Connect endpoints against panva's oidc-provider (in memory), same
# load generator (wrk), one run: discovery, JWKS, client_credentials, rotating
# refresh_token; requests/s, p50/p99, server CPU and RSS; RSS per 10,000 families.
# Usage: bench/oidc.sh [seconds-per-run]   (default 10; three alternating runs each)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk (Debian package)..." >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
if [ ! -d bench/oidc-provider/node_modules/oidc-provider ]; then
  (cd bench/oidc-provider && npm ci --no-audit --no-fund --loglevel=error)
fi
cargo build --release --quiet --bin entitled --example bench_oidc
exec target/release/examples/bench_oidc target/release/entitled bench/oidc-provider/server.mjs "${1:-10}" bench/wrk
