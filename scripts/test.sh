#!/usr/bin/env bash
# The whole test suite, from a fresh clone:
#   unit tests (domain, auth, store contract on every backend), the HTTP
#   integration tests (real listener, real SQLite, real binary, kill -9), and
#   the official Microsoft Graph SDK suites (Python msgraph-sdk, JavaScript
#   @microsoft/microsoft-graph-client) against the real binary, and
#   schemathesis against the binary's own OpenAPI document; the examples in
#   examples/ run under `presenced exec`; the README walk-through runs as
#   pasted (scripts/readme-test.sh); the dashboard in headless chromium.
# Installs what the suites need (system packages via apt-get when missing, a
# Python venv in .venv-sdk, npm ci from the committed lockfile).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

# --- System packages, only when missing (apt-get update once).
missing=()
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# The Redis backend's tests start real redis-server processes (and
# redis-cli --cluster create for the cluster).
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
# The dashboard check drives a real headless browser.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: please install: ${missing[*]}" >&2
    exit 1
  fi
  echo "test.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${missing[@]}"
fi

# --- Rust: one (dev) profile for the tests and the binary they start.
echo "test.sh: cargo test"
cargo test --locked

# --- Official SDK suites against the binary cargo test just built.
echo "test.sh: official Graph SDK suites"
PRESENCED_BIN="$repo/target/debug/presenced" scripts/sdk-tests.sh

# --- The examples (examples/), each under `presenced exec`, as users run them.
echo "test.sh: examples under presenced exec"
PRESENCED_BIN="$repo/target/debug/presenced" scripts/examples.sh

# --- The README walk-through and its Python program, as pasted, against a
# real server (presenced on PATH is a shim to the binary built above).
echo "test.sh: README walk-through"
PRESENCED_BIN="$repo/target/debug/presenced" scripts/readme-test.sh

# --- The dashboard in headless chromium (screenshots in target/dashboard-screenshots/).
echo "test.sh: dashboard in headless chromium"
PRESENCED_BIN="$repo/target/debug/presenced" scripts/dashboard.sh

# --- Schemathesis against the server's own OpenAPI document.
echo "test.sh: schemathesis"
PRESENCED_BIN="$repo/target/debug/presenced" scripts/schemathesis.sh
echo "test.sh: all suites passed"
