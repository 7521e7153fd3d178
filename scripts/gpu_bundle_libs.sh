#!/usr/bin/env bash
# Copies the shared libraries the `slidesparse` CLI of a CUDA build needs but the GPU machines lack
# (libfmt, libre2: Debian packages of the build machine) into BUILD_DIR/rtlibs, where the CLI's
# RUNPATH ($ORIGIN/rtlibs, cmake/bench.cmake) finds them. Run it here, after building, before
# carrying the build directory to a GPU machine. The C/C++ runtime, CUDA and cuSPARSELt are left
# out: the GPU machines have their own (newer) ones.
#   BUILD_DIR=build-gpu bash scripts/gpu_bundle_libs.sh
set -euo pipefail
build=${BUILD_DIR:-build-gpu}
exe=$build/slidesparse
[ -x "$exe" ] || { echo "gpu_bundle_libs: $exe not built"; exit 2; }
mkdir -p "$build/rtlibs"
ldd "$exe" | awk '/=>/ {print $1, $3}' | while read -r name path; do
  case $name in
    libfmt.so* | libre2.so*)
      # A rebuilt CLI already resolves them from rtlibs/ (its RUNPATH): nothing to copy then.
      [ "$(readlink -f "$path")" = "$(readlink -f "$build/rtlibs/$name" 2>/dev/null)" ] && continue
      cp -L "$path" "$build/rtlibs/$name"
      echo "gpu_bundle_libs: $name <- $path"
      ;;
  esac
done
