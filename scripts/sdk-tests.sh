#!/usr/bin/env bash
# Official-SDK conformance tests: drives a real presenced binary through the
# Microsoft Graph Python SDK (msgraph-sdk) and JavaScript client
# (@microsoft/microsoft-graph-client). See sdk-tests/README.md.
#
# Usage: scripts/sdk-tests.sh [python|js]...   (default: both)
# Env:   PRESENCED_BIN  path to the binary (default: target/debug/presenced)
#        SDK_TESTS_PYTHON  interpreter used to create the venv (default: python3)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

suites=("$@")
if [ ${#suites[@]} -eq 0 ]; then
  suites=(python js)
fi
for s in "${suites[@]}"; do
  case "$s" in
    python|js) ;;
    *) echo "sdk-tests: unknown suite '$s' (expected python or js)" >&2; exit 2 ;;
  esac
done
want() { local s; for s in "${suites[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

bin="${PRESENCED_BIN:-target/debug/presenced}"
case "$bin" in /*) ;; *) bin="$repo/$bin" ;; esac
if [ ! -x "$bin" ]; then
  echo "sdk-tests: presenced binary not found or not executable: $bin" >&2
  echo "sdk-tests: build it first (cargo build --bin presenced) or set PRESENCED_BIN" >&2
  exit 1
fi
export PRESENCED_BIN="$bin"

hash_of() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }

# --- Python: venv in the git-ignored .venv-sdk, reinstalled only when requirements change.
setup_python() {
  local venv="$repo/.venv-sdk" req="$repo/sdk-tests/python/requirements.txt"
  local py="${SDK_TESTS_PYTHON:-python3}"
  if [ ! -x "$venv/bin/python" ]; then
    echo "sdk-tests: creating $venv"
    "$py" -m venv "$venv"
  fi
  local stamp="$venv/.sdk-tests-requirements.sha256" want_hash
  want_hash="$(hash_of "$req")"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want_hash" ]; then
    echo "sdk-tests: installing Python requirements"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-input -r "$req"
    echo "$want_hash" >"$stamp"
  fi
}

# --- JavaScript: npm ci from the committed lockfile, skipped while node_modules matches it.
setup_js() {
  local dir="$repo/sdk-tests/js"
  local stamp="$dir/node_modules/.sdk-tests-lock.sha256" want_hash
  want_hash="$(hash_of "$dir/package.json" "$dir/package-lock.json")"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want_hash" ]; then
    echo "sdk-tests: npm ci in sdk-tests/js"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want_hash" >"$stamp"
  fi
}

failed=()
if want python; then
  setup_python
  echo "sdk-tests: Python suite (msgraph-sdk) against $PRESENCED_BIN"
  if ! (cd "$repo/sdk-tests/python" && "$repo/.venv-sdk/bin/python" -m pytest); then
    failed+=(python)
  fi
fi
if want js; then
  setup_js
  echo "sdk-tests: JavaScript suite (@microsoft/microsoft-graph-client) against $PRESENCED_BIN"
  if ! (cd "$repo/sdk-tests/js" && npm test --silent); then
    failed+=(js)
  fi
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "sdk-tests: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "sdk-tests: all requested suites passed (${suites[*]})"
