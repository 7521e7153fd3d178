#!/usr/bin/env bash
# Build the libFuzzer targets with clang into ${FUZZ_BUILD_DIR:-build-fuzz} and run every
# tests/fuzz/fuzz_<name>.cpp target for ${FUZZ_SECONDS:-60} seconds each, over a scratch copy of
# its seed corpus tests/fuzz/corpus/<name>/ (the committed seeds are never modified), with
# tests/fuzz/<name>.dict when it exists. FUZZ_TARGETS="safetensors gguf" picks a subset. Exits
# non-zero when a fuzzer finds a crash, a leak or a timeout; the reproducer is left in
# <build>/artifacts/.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
seconds=${FUZZ_SECONDS:-60}

if [ -n "${FUZZ_TARGETS:-}" ]; then
  read -r -a names <<<"$FUZZ_TARGETS"
else
  names=()
  for src in "$root"/tests/fuzz/fuzz_*.cpp; do
    n=$(basename "$src" .cpp)
    names+=("${n#fuzz_}")
  done
fi

gen=()
command -v ninja >/dev/null && [ ! -f "$build/Makefile" ] && gen=(-G Ninja)
cmake -S "$root" -B "$build" "${gen[@]}" -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLIDESPARSE_BUILD_FUZZERS=ON \
  -DSLIDESPARSE_BUILD_TESTS=OFF -DSLIDESPARSE_ENABLE_CUDA=OFF >/dev/null
targets=()
for n in "${names[@]}"; do targets+=("fuzz_$n"); done
cmake --build "$build" --target "${targets[@]}" -j "$(nproc)"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$build/artifacts"

for n in "${names[@]}"; do
  corpus="$scratch/$n"
  mkdir -p "$corpus"
  if [ -d "$root/tests/fuzz/corpus/$n" ]; then cp "$root/tests/fuzz/corpus/$n"/* "$corpus"/; fi
  dict=()
  [ -f "$root/tests/fuzz/$n.dict" ] && dict=(-dict="$root/tests/fuzz/$n.dict")
  echo "[fuzz] fuzz_$n for ${seconds}s"
  # -timeout: one input taking 10 s is a hang (inputs here are at most a few KiB).
  "$build/fuzz_$n" "$corpus" "${dict[@]}" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$build/artifacts/fuzz_$n-" -print_final_stats=1
  echo "[fuzz] fuzz_$n: no crash found"
done
