#!/usr/bin/env bash
# Build the libFuzzer targets with clang into ${FUZZ_BUILD_DIR:-build-fuzz} and run
# fuzz_safetensors for ${FUZZ_SECONDS:-60} seconds over a scratch copy of the seed corpus (the
# committed seeds are never modified). Exits non-zero when the fuzzer finds a crash, a leak or a
# timeout; the reproducer is left in <build>/artifacts/.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
seconds=${FUZZ_SECONDS:-60}

gen=()
command -v ninja >/dev/null && [ ! -f "$build/Makefile" ] && gen=(-G Ninja)
cmake -S "$root" -B "$build" "${gen[@]}" -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLIDESPARSE_BUILD_FUZZERS=ON \
  -DSLIDESPARSE_BUILD_TESTS=OFF -DSLIDESPARSE_ENABLE_CUDA=OFF >/dev/null
cmake --build "$build" --target fuzz_safetensors -j "$(nproc)"

corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cp "$root"/tests/fuzz/corpus/safetensors/* "$corpus"/
mkdir -p "$build/artifacts"

echo "[fuzz] fuzz_safetensors for ${seconds}s"
# -timeout: one input taking 10 s is a hang (headers are at most a few KiB here).
"$build/fuzz_safetensors" "$corpus" \
  -dict="$root/tests/fuzz/safetensors.dict" \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$build/artifacts/" -print_final_stats=1
echo "[fuzz] no crash found"
