#!/usr/bin/env bash
# Configure and build slidesparse into ${BUILD_DIR:-build}. Extra arguments go to cmake.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build}
gen=()
command -v ninja >/dev/null && [ ! -f "$build/Makefile" ] && gen=(-G Ninja)
# SM90_KERNELS: a regex on the sm90 CUTLASS kernel ids to build (default: all; each takes 1-2 min of
# one core). Always passed, so a value left in the cache by an earlier run does not stick.
cmake -S "$root" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-Release} \
  "-DSLIDESPARSE_SM90_ONLY=${SM90_KERNELS:-}" "$@" >/dev/null
cmake --build "$build" -j "$(nproc)"
