#!/usr/bin/env bash
# Fetch the CUTLASS 3.x / CuTe headers for the sm90 backend (src/backends/sm90): downloads the PyPI
# wheel nvidia-cutlass (pinned, default 4.2.0.0) and unpacks cutlass_library/source/include and
# cutlass_library/source/tools/util/include into .deps/cutlass/{include,util/include} (ignored by git).
#
# Idempotent: does nothing when .deps/cutlass/include/cutlass/cutlass.h of the pinned version is
# present. Never fails the caller: without network or pip it warns and exits 0; CMake then builds
# without the sm90 backend (SLIDESPARSE_HAVE_SM90=0, make_sm90_plan() reports kUnsupported).
# Environment: SLIDESPARSE_CUTLASS_VERSION (default 4.2.0.0).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest=$root/.deps/cutlass
version=${SLIDESPARSE_CUTLASS_VERSION:-4.2.0.0}

# shellcheck source=scripts/fetch_wheel.sh
source "$root/scripts/fetch_wheel.sh"
fetch_wheel cutlass nvidia-cutlass "$version" "$dest" include/cutlass/cutlass.h \
  "building without the sm90 (CUTLASS) backend" \
  cutlass_library/source/include/=include/ cutlass_library/source/tools/util/include/=util/include/
