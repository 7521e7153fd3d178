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

if [ -f "$dest/include/cutlass/cutlass.h" ] && [ "$(cat "$dest/VERSION" 2>/dev/null)" = "$version" ]; then
  echo "[cutlass] present: $dest ($version)"
  exit 0
fi

warn() {
  echo "[cutlass] WARNING: $*" >&2
  echo "[cutlass] WARNING: building without the sm90 (CUTLASS) backend" >&2
  exit 0
}

py=$(command -v python3 || true)
[ -n "$py" ] || warn "python3 not found, cannot download nvidia-cutlass==$version"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "[cutlass] downloading nvidia-cutlass==$version (PyPI wheel, ~6 MB)"
if ! "$py" -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux2014_x86_64 --python-version 3.12 \
    -d "$tmp" "nvidia-cutlass==$version"; then
  warn "pip download of nvidia-cutlass==$version failed"
fi
whl=$(ls "$tmp"/nvidia_cutlass-*.whl 2>/dev/null | head -n 1)
[ -n "$whl" ] || warn "pip reported success but no nvidia_cutlass wheel is in $tmp"

# Unpack next to the destination, then rename: an interrupted run never leaves a half tree at $dest.
mkdir -p "$root/.deps"
stage=$root/.deps/.cutlass.$$
rm -rf "$stage"
if ! "$py" - "$whl" "$stage" "$version" <<'PY'; then
import os, sys, zipfile
whl, stage, version = sys.argv[1], sys.argv[2], sys.argv[3]
maps = {"cutlass_library/source/include/": "include/",
        "cutlass_library/source/tools/util/include/": "util/include/"}
n = 0
with zipfile.ZipFile(whl) as z:
    for info in z.infolist():
        name = info.filename
        if name.endswith("/"):
            continue
        for src, dst in maps.items():
            if name.startswith(src):
                out = os.path.join(stage, dst, name[len(src):])
                os.makedirs(os.path.dirname(out), exist_ok=True)
                with z.open(info) as f, open(out, "wb") as g:
                    g.write(f.read())
                n += 1
if n == 0 or not os.path.isfile(os.path.join(stage, "include", "cutlass", "cutlass.h")):
    sys.exit("wheel holds no cutlass_library/source/include/cutlass/cutlass.h")
with open(os.path.join(stage, "VERSION"), "w") as f:
    f.write(version + "\n")
PY
  rm -rf "$stage"
  warn "could not unpack $whl"
fi
rm -rf "$dest"
mv "$stage" "$dest"
echo "[cutlass] installed: $dest ($version, $(find "$dest" -type f | wc -l) files)"
