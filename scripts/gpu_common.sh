# Sourced by the GPU-machine scripts (gpu_check.sh, gpu_gemm.sh): logging and PASS/FAIL steps.
#   start_log FILE     tee everything that follows into FILE (created empty)
#   step NAME CMD...   run CMD, record "PASS/FAIL NAME (time)" in summary[]; sets failed=1 on failure
#   print_summary      print summary[] (the caller decides its exit status from $failed)

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
