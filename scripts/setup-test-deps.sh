#!/usr/bin/env bash
# Installs what the test suite needs beyond cargo: Debian's Chromium, the browser
# tests' npm packages (playwright-core, axe-core, smtp-server, mailparser) and the independent
# OpenID Connect relying party (openid-client) and the SCIM checker scim2-tester
# (PyPI). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "chromium is missing: install Debian's chromium package (apt-get install chromium)" >&2
    exit 1
  fi
  echo "installing chromium (Debian package)..." >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

npm_ci() { # directory, a package that must be there
  if [ ! -d "$1/node_modules/$2" ] || [ "$1/package-lock.json" -nt "$1/node_modules/.package-lock.json" ]; then
    (cd "$1" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}
npm_ci browser axe-core
npm_ci interop openid-client

# scim2-tester (PyPI), the SCIM compliance checker, in its own virtual environment.
scim_venv=interop/scim/.venv
if [ ! -x "$scim_venv/bin/scim2" ] || [ interop/scim/requirements.txt -nt "$scim_venv/bin/scim2" ]; then
  python3 -m venv "$scim_venv"
  "$scim_venv/bin/pip" install --quiet --disable-pip-version-check -r interop/scim/requirements.txt
  touch "$scim_venv/bin/scim2"
fi
