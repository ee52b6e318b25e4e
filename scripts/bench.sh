#!/usr/bin/env bash
# The benchmarks, as BENCHMARKS.md reports them: the store and `effective`
# (benches/throughput.rs), then change notifications end to end
# (benches/notify.rs). Both build with the release profile (thin LTO), print
# tables and assert no timing; the numbers go into BENCHMARKS.md by hand.
# The notify bench reads PRESENCED_BENCH_PARTS, PRESENCED_BENCH_FADE_USERS and
# PRESENCED_BENCH_DRAIN_SECS from the environment (see its header).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

echo "bench.sh: cargo bench --bench throughput"
cargo bench --bench throughput
echo
echo "bench.sh: cargo bench --bench notify"
cargo bench --bench notify
