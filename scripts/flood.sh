#!/usr/bin/env bash
# Connection floods against the real binary (issue #13), as BENCHMARKS.md
# reports them: builds the release binary, raises the open-file limit as far
# as allowed, then runs scripts/flood.py (Python 3.11, standard library only),
# which starts a fresh `presenced serve` on 127.0.0.1 (a free port, a temp
# data dir) per scenario, floods it, measures a well-behaved client, prints a
# table and stops each server by its pid. Not part of the test suite; asserts
# no timing. Arguments go to flood.py (--help; --only NAMES, --scale 0.1,
# --default-timeouts).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "flood.sh: open-file limit $(ulimit -n)"
echo "flood.sh: cargo build --release"
cargo build --release
bin="${CARGO_TARGET_DIR:-$repo/target}/release/presenced"
exec python3 "$repo/scripts/flood.py" --bin "$bin" "$@"
