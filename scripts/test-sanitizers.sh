#!/usr/bin/env bash
# The test suite under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/: every test but the
# parity comparisons), then the scheduler, thread pool, server and batch tests under ThreadSanitizer
# (build-tsan/). Any report fails.
# Usage: scripts/test-sanitizers.sh [asan|tsan]   (both when no argument; scripts/test.sh runs asan)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
which=${1:-all}
export CCACHE_BASEDIR=$root
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

# Configures and builds build-$1 with MEDLAB_SANITIZE=$2; further arguments are the targets (all when none).
build() {
  local dir=build-$1 sanitize=$2 targets=()
  shift 2
  (($#)) && targets=(--target "$@")
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMEDLAB_BUILD_BENCH=OFF \
        -DMEDLAB_SANITIZE="$sanitize" "${launcher[@]}" >/dev/null
  cmake --build "$dir" -j "$(nproc)" "${targets[@]}"
}

# Runs ctest in build-$1 (further arguments go to ctest). Reports go to files under build-$1/sanitizer-reports
# rather than stderr, so that none is lost: the python tests capture medlab's stderr, the server tests send it
# to a log, and a report in a process expected to fail must fail the run too. Each report also exits 86.
check() {
  local dir=build-$1 status=0
  shift
  rm -rf "$dir/sanitizer-reports" && mkdir -p "$dir/sanitizer-reports"
  ctest --test-dir "$dir" --output-on-failure -j 2 "$@" || status=1
  if compgen -G "$dir/sanitizer-reports/*" >/dev/null; then
    for report in "$dir"/sanitizer-reports/*; do
      echo "=== $report"
      cat "$report"
    done
    echo "sanitizer reports: $(ls "$dir/sanitizer-reports" | wc -l) file(s) in $dir/sanitizer-reports"
    status=1
  fi
  ((status)) || rm -rf "$dir/test-work"
  return $status
}

failed=()
if [[ $which == all || $which == asan ]]; then
  build asan address,undefined
  reports=$root/build-asan/sanitizer-reports
  export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:exitcode=86:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1:log_path=$reports/asan"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=86:log_path=$reports/ubsan"
  # The parity tests (label parity) compare numbers with llama.cpp, pydicom and Pillow: they take most of
  # the suite's time and run medlab's code paths that the unit and CLI tests already run here.
  check asan -LE parity || failed+=(asan)
  unset ASAN_OPTIONS UBSAN_OPTIONS
fi
if [[ $which == all || $which == tsan ]]; then
  # What runs threads: the compute pool (core_test), the scheduler, sessions on pools, the server's request
  # code, and the binary for medlab serve and medlab batch --parallel.
  build tsan thread core_test scheduler_test session_test server_test medlab
  export TSAN_OPTIONS="halt_on_error=1:exitcode=86:second_deadlock_stack=1:log_path=$root/build-tsan/sanitizer-reports/tsan"
  # GoogleTest names are Suite.Test: every test of the binaries built, and the scripts that drive medlab serve
  # and medlab batch --parallel (the other scripts' tests need binaries this build leaves out).
  check tsan -R '\.|^(server_api|server_load|cli_batch)$' || failed+=(tsan)
  unset TSAN_OPTIONS
fi
if ((${#failed[@]})); then
  echo "sanitizers: FAILED (${failed[*]})"
  exit 1
fi
echo "sanitizers: PASSED ($which: no reports, every test passed)"
