#!/usr/bin/env bash
# The dashboard (GET /) in a real headless browser: Debian's chromium,
# driven over the DevTools protocol by scripts/dashboard-check.py (Python
# standard library only), against the binary under `presenced exec`.
# Then a blank page on another origin calls presenced with a bearer token
# (CORS). Screenshots land in target/dashboard-screenshots/.
#
# Env: PRESENCED_BIN  path to the binary (default: target/debug/presenced)
#      CHROMIUM       the browser (default: chromium on PATH)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

bin="${PRESENCED_BIN:-target/debug/presenced}"
case "$bin" in /*) ;; *) bin="$repo/$bin" ;; esac
if [ ! -x "$bin" ]; then
  echo "dashboard: presenced binary not found or not executable: $bin (cargo build --bin presenced)" >&2
  exit 1
fi
if ! command -v "${CHROMIUM:-chromium}" >/dev/null 2>&1; then
  echo "dashboard: chromium not found (apt-get install chromium)" >&2
  exit 1
fi
rm -rf "$repo/target/dashboard-screenshots"
echo "dashboard: headless chromium against presenced exec"
SCREENSHOT_DIR="$repo/target/dashboard-screenshots" PRESENCED_BIN="$bin" \
  "$bin" exec -- python3 "$repo/scripts/dashboard-check.py"
