# Sourced by the GPU-machine scripts (gpu_check.sh, gpu_gemm.sh): logging and PASS/FAIL steps.
#   start_log FILE     tee everything that follows into FILE (created empty)
#   step NAME CMD...   run CMD, record "PASS/FAIL NAME (time)" in summary[]; sets failed=1 on failure
#   print_summary      print summary[] (the caller decides its exit status from $failed)
#   gpu_info           nvidia-smi, plus clocks as found (read only: never changes GPU settings)
#   libs EXE           which cuSPARSELt/cuBLAS EXE loads; fails if a library is not found
#   run_gtest EXE      run a test executable; a skipped test fails it (the device must be usable)
#   find_sanitizer     print the compute-sanitizer path, or nothing

declare -a summary=()
failed=0

start_log() {
  mkdir -p "$(dirname "$1")"
  : >"$1"
  exec > >(tee -a "$1") 2>&1
}

step() {
  local name=$1
  shift
  echo
  echo "=== $name: $*"
  local t0=$SECONDS
  "$@"
  local rc=$?
  local dt=$((SECONDS - t0))
  if [ $rc -eq 0 ]; then
    summary+=("PASS  $name (${dt}s)")
  else
    summary+=("FAIL  $name (exit $rc, ${dt}s)")
    failed=1
  fi
  return 0
}

print_summary() {
  printf '%s\n' "${summary[@]}"
}

gpu_info() {
  nvidia-smi || return 1
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.limit,temperature.gpu \
    --format=csv 2>/dev/null || true
}

libs() {
  local exe=$1
  [ -x "$exe" ] || { echo "missing $exe"; return 1; }
  echo "$exe:"
  ldd "$exe" | grep -E "cusparseLt|cublas|not found" || true
  ! ldd "$exe" | grep -q "not found"
}

# The executables are run directly: ctest's test list holds the build machine's absolute paths.
# A skipped GPU test on a GPU machine means the device (or cuSPARSELt) was not usable: a failure.
run_gtest() {
  local exe=$1
  local txt
  txt=$(mktemp)
  "$exe" --gtest_color=no 2>&1 | tee "$txt"
  local rc=${PIPESTATUS[0]}
  if grep -q '^\[  SKIPPED \]' "$txt"; then
    echo "$exe skipped tests on a GPU machine"
    rc=1
  fi
  rm -f "$txt"
  return "$rc"
}

find_sanitizer() {
  local s
  s=$(command -v compute-sanitizer || true)
  [ -z "$s" ] && [ -x /usr/local/cuda/bin/compute-sanitizer ] && s=/usr/local/cuda/bin/compute-sanitizer
  echo "$s"
}
