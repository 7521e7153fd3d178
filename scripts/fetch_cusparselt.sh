#!/usr/bin/env bash
# Fetch cuSPARSELt (headers + libcusparseLt.so.0) for building the sparse GEMM backend on a machine
# without a system install: downloads the PyPI wheel nvidia-cusparselt-cu13 (default 0.8.0) and
# unpacks nvidia/cusparselt/{include,lib} into .deps/cusparselt/ (ignored by git).
#
# Idempotent: does nothing when .deps/cusparselt/include/cusparseLt.h already exists. Never fails
# the caller: when the download is impossible (no network, no pip) it prints a warning and exits 0;
# CMake then builds without the cuSPARSELt backend (SLIDESPARSE_HAVE_CUSPARSELT=0).
# Environment: SLIDESPARSE_CUSPARSELT_VERSION (default 0.8.0).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest=$root/.deps/cusparselt
version=${SLIDESPARSE_CUSPARSELT_VERSION:-0.8.0}

if [ -f "$dest/include/cusparseLt.h" ]; then
  echo "[cusparselt] present: $dest"
  exit 0
fi

warn() {
  echo "[cusparselt] WARNING: $*" >&2
  echo "[cusparselt] WARNING: building without the cuSPARSELt backend (sparse GEMM plans will report 'unsupported')" >&2
  exit 0
}

py=$(command -v python3 || true)
[ -n "$py" ] || warn "python3 not found, cannot download nvidia-cusparselt-cu13==$version"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "[cusparselt] downloading nvidia-cusparselt-cu13==$version (PyPI wheel, ~170 MB)"
# The wheel is tagged manylinux2014_x86_64 / py3: name the platform and Python version explicitly so
# pip resolves it whatever the local interpreter is.
if ! "$py" -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux2014_x86_64 --python-version 3.12 \
    -d "$tmp" "nvidia-cusparselt-cu13==$version"; then
  warn "pip download of nvidia-cusparselt-cu13==$version failed"
fi
whl=$(ls "$tmp"/nvidia_cusparselt_cu13-*.whl 2>/dev/null | head -n 1)
[ -n "$whl" ] || warn "pip reported success but no nvidia_cusparselt_cu13 wheel is in $tmp"

# Unpack next to the destination, then rename: an interrupted run never leaves a half tree at $dest.
mkdir -p "$root/.deps"
stage=$root/.deps/.cusparselt.$$
rm -rf "$stage"
if ! "$py" - "$whl" "$stage" <<'PY'; then
import os, sys, zipfile
whl, stage = sys.argv[1], sys.argv[2]
prefix = "nvidia/cusparselt/"
n = 0
with zipfile.ZipFile(whl) as z:
    for info in z.infolist():
        name = info.filename
        if not name.startswith(prefix) or name.endswith("/"):
            continue
        rel = name[len(prefix):]
        if not (rel.startswith("include/") or rel.startswith("lib/")):
            continue
        out = os.path.join(stage, rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(info) as src, open(out, "wb") as dst:
            while True:
                chunk = src.read(1 << 20)
                if not chunk:
                    break
                dst.write(chunk)
        n += 1
if n == 0 or not os.path.isfile(os.path.join(stage, "include", "cusparseLt.h")):
    sys.exit("wheel holds no nvidia/cusparselt/include/cusparseLt.h")
PY
  rm -rf "$stage"
  warn "could not unpack $whl"
fi
rm -rf "$dest"
mv "$stage" "$dest"
echo "[cusparselt] installed: $dest ($(ls "$dest/lib" | tr '\n' ' '))"
