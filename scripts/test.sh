#!/usr/bin/env bash
# The README's test command: set up, build, run every test (GPU tests skip loudly without a GPU).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/setup.sh"
bash "$root/scripts/build.sh"
cd "${BUILD_DIR:-$root/build}"
ctest --output-on-failure -j "$(nproc)" "$@"
# ctest prints only "***Skipped" for a GTEST_SKIP: show why the tier-1 (GPU) tests did not run.
if ctest -N -L gpu 2>/dev/null | grep -q "Total Tests: [1-9]"; then
  reason=$(ctest -L gpu -V -I 1,1 2>&1 | grep -m1 -oE "(no CUDA device|skipp?ed)[^\"]*" || true)
  [ -n "$reason" ] && echo "[test] tier-1 GPU tests skipped on this machine: $reason"
fi
exit 0
