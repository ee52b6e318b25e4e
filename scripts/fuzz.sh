#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for FUZZ_SECONDS (default 60) each,
# on the nightly toolchain (`cargo +nightly`), installing cargo-fuzz when
# missing. Each target starts from its committed seeds (fuzz/seeds/<target>)
# and the corpus of earlier runs (fuzz/corpus/<target>, not committed); a
# crash leaves its input in fuzz/artifacts/<target>/. Exits non-zero if any
# target crashed. Not part of scripts/test.sh: CI runs the stable property
# tests (tests/api/robustness/ and the domain modules' proptests).
#
#   scripts/fuzz.sh                     every target, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh duration jwt_claims
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
seconds="${FUZZ_SECONDS:-60}"

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz.sh: needs a nightly toolchain (rustup toolchain install nightly)" >&2
  exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

cargo +nightly fuzz build

failed=()
for target in "${targets[@]}"; do
  echo "fuzz.sh: $target for ${seconds}s"
  mkdir -p "fuzz/corpus/$target"
  seeds=()
  [ -d "fuzz/seeds/$target" ] && seeds=("fuzz/seeds/$target")
  if ! cargo +nightly fuzz run "$target" "fuzz/corpus/$target" "${seeds[@]}" -- \
    -max_total_time="$seconds" -print_final_stats=1; then
    failed+=("$target")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets ran ${seconds}s each without a crash"
