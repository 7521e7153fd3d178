#!/usr/bin/env bash
# Install everything slidesparse needs to build and test on a Debian 12 machine (idempotent).
# Usage: bash scripts/setup.sh        (set SLIDESPARSE_SKIP_APT=1 to skip the package step)
set -euo pipefail

pkgs=(build-essential cmake ninja-build pkg-config git python3 python3-pip
      libcli11-dev nlohmann-json3-dev libfmt-dev libre2-dev libgtest-dev libgmock-dev
      clang libclang-rt-dev)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${SLIDESPARSE_SKIP_APT:-0}" != 1 ] && [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "[setup] build dependencies present"

# GPU builds: cuSPARSELt headers + library into .deps/cusparselt, CUTLASS headers (the sm90
# backend) into .deps/cutlass (neither ever fails; see the scripts).
if command -v nvcc >/dev/null 2>&1; then
  bash "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/fetch_cusparselt.sh"
  bash "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/fetch_cutlass.sh"
fi
