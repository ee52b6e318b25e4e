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
# shellcheck source=scripts/venv.sh
. "$repo/scripts/venv.sh"
setup_python() {
  ensure_venv "$repo/.venv-sdk" "$repo/sdk-tests/python/requirements.txt" "${SDK_TESTS_PYTHON:-python3}"
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

# --- JavaScript TLS test (js/test/tls.test.mjs): Node trusts a self-signed
# certificate only through NODE_EXTRA_CA_CERTS, which it reads once at start.
# So presenced makes its certificate here, before node starts: one short
# `serve --tls-self-signed` in a temporary data dir, stopped with SIGTERM as
# soon as it has printed the certificate line. The test's own server copies
# that certificate and key (from PRESENCED_SDK_TLS_DIR) into its data dir.
tls_tmp=""
cleanup() { if [ -n "$tls_tmp" ]; then rm -rf "$tls_tmp"; fi; }
trap cleanup EXIT
tls_data="" tls_cert=""
prepare_js_tls() {
  tls_tmp="$(mktemp -d "${TMPDIR:-/tmp}/presenced-sdk-tls-XXXXXX")"
  local out="$tls_tmp/stdout" err="$tls_tmp/stderr" pid i status=0 cert=""
  tls_data="$tls_tmp/data"
  head -c 36 /dev/urandom | base64 >"$tls_tmp/jwt-secret"
  "$bin" serve --tls-self-signed --listen 127.0.0.1:0 --data-dir "$tls_data" \
    --jwt-secret-file "$tls_tmp/jwt-secret" </dev/null >"$out" 2>"$err" &
  pid=$!
  for ((i = 0; i < 300; i++)); do # the certificate line, within 30 s
    cert="$(sed -n 's/^presenced TLS certificate (self-signed): //p' "$out")"
    if [ -n "$cert" ] || ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do # a graceful exit, within 15 s
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" || status=$?
  if [ -z "$cert" ] || [ ! -f "$cert" ] || [ "$status" -ne 0 ]; then
    echo "sdk-tests: presenced serve --tls-self-signed gave no certificate or exited $status" >&2
    cat "$out" "$err" >&2
    return 1
  fi
  tls_cert="$cert"
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
  if ! prepare_js_tls; then
    failed+=(js-tls-certificate)
  fi
  echo "sdk-tests: JavaScript suite (@microsoft/microsoft-graph-client) against $PRESENCED_BIN"
  if ! (
    cd "$repo/sdk-tests/js"
    if [ -n "$tls_cert" ]; then
      export PRESENCED_SDK_TLS_DIR="$tls_data" NODE_EXTRA_CA_CERTS="$tls_cert"
    fi
    npm test --silent
  ); then
    failed+=(js)
  fi
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "sdk-tests: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "sdk-tests: all requested suites passed (${suites[*]})"
