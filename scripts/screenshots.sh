#!/usr/bin/env bash
# Regenerates docs/screenshots: the admin portal's main pages at 1280 and 390 px wide,
# in Debian's Chromium, against a fresh server with the scene of browser/lib/scene.js.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-test-deps.sh
cargo build --quiet --bin entitled
node browser/screenshots.js
