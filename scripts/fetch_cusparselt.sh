#!/usr/bin/env bash
# Fetch cuSPARSELt (headers + libcusparseLt.so.0) for building the sparse GEMM backend on a machine
# without a system install: downloads the PyPI wheel nvidia-cusparselt-cu13 (default 0.8.0) and
# unpacks nvidia/cusparselt/{include,lib} into .deps/cusparselt/ (ignored by git).
#
# Idempotent: does nothing when .deps/cusparselt/include/cusparseLt.h already exists (of this version). Never fails
# the caller: when the download is impossible (no network, no pip) it prints a warning and exits 0;
# CMake then builds without the cuSPARSELt backend (SLIDESPARSE_HAVE_CUSPARSELT=0).
# Environment: SLIDESPARSE_CUSPARSELT_VERSION (default 0.8.0).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest=$root/.deps/cusparselt
version=${SLIDESPARSE_CUSPARSELT_VERSION:-0.8.0}

# shellcheck source=scripts/fetch_wheel.sh
source "$root/scripts/fetch_wheel.sh"
fetch_wheel cusparselt nvidia-cusparselt-cu13 "$version" "$dest" include/cusparseLt.h \
  "building without the cuSPARSELt backend (sparse GEMM plans will report 'unsupported')" \
  nvidia/cusparselt/include/=include/ nvidia/cusparselt/lib/=lib/
