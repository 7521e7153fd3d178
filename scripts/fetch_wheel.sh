# Sourced by fetch_cusparselt.sh and fetch_cutlass.sh: download one pinned PyPI wheel and unpack
# parts of it into .deps/<name>, without ever failing the caller.
#   fetch_wheel TAG DIST VERSION DEST REQUIRED NOTE MAP...
#     TAG       log prefix, e.g. cusparselt
#     DIST      the distribution, e.g. nvidia-cusparselt-cu13
#     DEST      destination directory; DEST/VERSION records the version unpacked
#     REQUIRED  a file (relative to DEST) that must exist afterwards, e.g. include/cusparseLt.h
#     NOTE      what the build does without it (printed with every warning)
#     MAP       one or more "prefix-in-wheel=subdir-of-DEST" pairs; other files are skipped
# Present (REQUIRED exists, and DEST/VERSION, if any, names VERSION): nothing to do. No python3, no
# network, a bad wheel: a warning and a return 0, the caller's build goes on without it. The
# unpack goes to a stage directory renamed at the end: an interrupted run leaves no half tree.
fetch_wheel() {
  local tag=$1 dist=$2 version=$3 dest=$4 required=$5 note=$6
  shift 6
  if [ -f "$dest/$required" ] && { [ ! -f "$dest/VERSION" ] || [ "$(cat "$dest/VERSION")" = "$version" ]; }; then
    echo "[$tag] present: $dest ($version)"
    return 0
  fi
  warn() {
    echo "[$tag] WARNING: $*" >&2
    echo "[$tag] WARNING: $note" >&2
  }
  local py
  py=$(command -v python3 || true)
  [ -n "$py" ] || { warn "python3 not found, cannot download $dist==$version"; return 0; }
  local tmp
  tmp=$(mktemp -d)
  echo "[$tag] downloading $dist==$version (PyPI wheel)"
  # The wheels are tagged manylinux2014_x86_64 / py3: name the platform and Python version
  # explicitly so pip resolves them whatever the local interpreter is.
  if ! "$py" -m pip download --quiet --no-deps --only-binary=:all: \
      --platform manylinux2014_x86_64 --python-version 3.12 -d "$tmp" "$dist==$version"; then
    warn "pip download of $dist==$version failed"
    rm -rf "$tmp"
    return 0
  fi
  local whl
  whl=$(ls "$tmp"/*.whl 2>/dev/null | head -n 1)
  [ -n "$whl" ] || { warn "pip reported success but no wheel is in $tmp"; rm -rf "$tmp"; return 0; }
  mkdir -p "$(dirname "$dest")"
  local stage
  stage=$(dirname "$dest")/.$(basename "$dest").$$
  rm -rf "$stage"
  if ! "$py" - "$whl" "$stage" "$version" "$required" "$@" <<'PY'; then
import os, sys, zipfile
whl, stage, version, required = sys.argv[1:5]
maps = [m.split("=", 1) for m in sys.argv[5:]]
n = 0
with zipfile.ZipFile(whl) as z:
    for info in z.infolist():
        name = info.filename
        if name.endswith("/"):
            continue
        for src, dst in maps:
            if name.startswith(src):
                out = os.path.join(stage, dst, name[len(src):])
                os.makedirs(os.path.dirname(out), exist_ok=True)
                with z.open(info) as f, open(out, "wb") as g:
                    while True:
                        chunk = f.read(1 << 20)
                        if not chunk:
                            break
                        g.write(chunk)
                n += 1
                break
if n == 0 or not os.path.isfile(os.path.join(stage, required)):
    sys.exit(f"the wheel holds no {required} under the expected prefixes")
with open(os.path.join(stage, "VERSION"), "w") as f:
    f.write(version + "\n")
PY
    rm -rf "$stage" "$tmp"
    warn "could not unpack $whl"
    return 0
  fi
  rm -rf "$tmp" "$dest"
  mv "$stage" "$dest"
  echo "[$tag] installed: $dest ($version, $(find "$dest" -type f | wc -l) files)"
}
