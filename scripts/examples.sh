#!/usr/bin/env bash
# The examples in examples/, each run the way a user runs it: under
# `presenced exec` (an in-memory emulator for the length of the suite).
#   examples/python-pytest  pytest + msgraph-sdk, in the SDK suite's venv (.venv-sdk)
#   examples/node-test      node:test + @microsoft/microsoft-graph-client (npm ci from its lockfile)
#
# Usage: scripts/examples.sh [python|node]...   (default: both)
# Env:   PRESENCED_BIN  path to the binary (default: target/debug/presenced)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

examples=("$@")
if [ ${#examples[@]} -eq 0 ]; then
  examples=(python node)
fi
bin="${PRESENCED_BIN:-target/debug/presenced}"
case "$bin" in /*) ;; *) bin="$repo/$bin" ;; esac
if [ ! -x "$bin" ]; then
  echo "examples: presenced binary not found or not executable: $bin (cargo build --bin presenced)" >&2
  exit 1
fi

hash_of() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }
# shellcheck source=scripts/venv.sh
. "$repo/scripts/venv.sh"

failed=()
for example in "${examples[@]}"; do
  case "$example" in
    python)
      ensure_venv "$repo/.venv-sdk" "$repo/sdk-tests/python/requirements.txt" "${SDK_TESTS_PYTHON:-python3}"
      echo "examples: python-pytest under presenced exec"
      if ! (cd "$repo/examples/python-pytest" && "$bin" exec -- "$repo/.venv-sdk/bin/python" -m pytest); then
        failed+=(python)
      fi
      ;;
    node)
      dir="$repo/examples/node-test"
      stamp="$dir/node_modules/.examples-lock.sha256"
      want="$(hash_of "$dir/package.json" "$dir/package-lock.json")"
      if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        echo "examples: npm ci in examples/node-test"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
        echo "$want" >"$stamp"
      fi
      echo "examples: node-test under presenced exec"
      if ! (cd "$dir" && "$bin" exec -- npm test --silent); then
        failed+=(node)
      fi
      ;;
    *) echo "examples: unknown example '$example' (expected python or node)" >&2; exit 2 ;;
  esac
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "examples: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "examples: all passed (${examples[*]})"
