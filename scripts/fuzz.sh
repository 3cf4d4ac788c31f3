#!/usr/bin/env bash
# Fuzzes medlab's input parsers with libFuzzer (clang), AddressSanitizer and UBSan.
#
#   scripts/fuzz.sh [--seconds N] [TARGET...]   each target (default: all) for N seconds (default 60)
#   scripts/fuzz.sh --brief                      5000 inputs each from a fixed seed (seconds): what CI runs
#   scripts/fuzz.sh --list                       the targets, and the fuzzing time each has had here
#
# Targets are src/*/*_fuzz.cpp. Each grows its corpus in build-fuzz/corpus/TARGET (kept between runs) from
# the committed seeds in tests/fuzz/TARGET, plus pydicom's test files for the DICOM target. Time spent is
# added up in tests/fuzz/fuzz-time.tsv. An input that crashes, hangs (over 10 s) or runs out of memory
# (2 GB) is copied to tests/fuzz/TARGET/crash-<sha1>, where the tests replay it from then on (ctest -L fuzz);
# the run then exits 1. Fix the bug and commit the input.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
brief=0
targets=()
list=0
while (($#)); do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --brief) brief=1; shift ;;
    --list) list=1; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done

all_targets=()
for source in src/*/*_fuzz.cpp; do
  name=$(basename "$source" _fuzz.cpp)
  all_targets+=("$name")
done
((${#targets[@]})) || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  [[ " ${all_targets[*]} " == *" $t "* ]] || { echo "fuzz.sh: no target '$t' (targets: ${all_targets[*]})" >&2; exit 2; }
done

log=tests/fuzz/fuzz-time.tsv
if ((list)); then
  for t in "${all_targets[@]}"; do
    total=$(awk -F'\t' -v t="$t" '$2 == t { s += $3 } END { print s + 0 }' "$log" 2>/dev/null || echo 0)
    printf '%-18s %6d s fuzzed\n' "$t" "$total"
  done
  exit 0
fi

command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ is missing: run scripts/setup.sh" >&2; exit 2; }
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
export CCACHE_BASEDIR=$PWD
if [[ ! -f build-fuzz/CMakeCache.txt ]]; then
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Release -DMEDLAB_FUZZ=ON \
    -DMEDLAB_BUILD_TESTS=OFF -DMEDLAB_BUILD_BENCH=OFF "${launcher[@]}" >/dev/null
fi
cmake --build build-fuzz -j "$(nproc)" --target "${targets[@]/%/_fuzz}"

pydicom_files=$(/usr/bin/python3 -c 'import os, pydicom; print(os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files"))' 2>/dev/null || true)
[[ -f $log ]] || printf 'date\ttarget\tseconds\texecutions\tresult\n' > "$log"
failed=()
for t in "${targets[@]}"; do
  corpus=build-fuzz/corpus/$t
  artifacts=build-fuzz/artifacts/$t
  mkdir -p "$corpus" "$artifacts"
  seeds=(tests/fuzz/"$t")
  if [[ $t == dicom && -d $pydicom_files ]]; then
    # pydicom's corpus: real vendors' files in every transfer syntax; the small ones keep the fuzzer fast.
    mkdir -p build-fuzz/seeds/dicom
    find "$pydicom_files" -name '*.dcm' -size -256k -exec cp -n {} build-fuzz/seeds/dicom/ \;
    seeds+=(build-fuzz/seeds/dicom)
  fi
  # A brief run is the same on every machine (fixed seed and count), so it cannot fail CI by luck.
  budget=(-max_total_time="$seconds")
  ((brief)) && budget=(-runs=5000 -seed=1)
  echo "fuzz.sh: $t (${budget[*]})"
  started=$(date +%s)
  set +e
  "build-fuzz/${t}_fuzz" "$corpus" "${seeds[@]}" "${budget[@]}" -timeout=10 -rss_limit_mb=2048 \
    -max_len=65536 -artifact_prefix="$artifacts/" -print_final_stats=1 > "build-fuzz/$t.log" 2>&1
  status=$?
  set -e
  elapsed=$(($(date +%s) - started))
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "build-fuzz/$t.log" | tail -1)
  result=clean
  if ((status != 0)); then
    result=crash
    failed+=("$t")
    tail -n 40 "build-fuzz/$t.log" >&2
    for artifact in "$artifacts"/*; do
      [[ -f $artifact ]] || continue
      kept=tests/fuzz/$t/crash-$(sha1sum "$artifact" | cut -c1-16)
      cp "$artifact" "$kept"
      echo "fuzz.sh: $t: kept $kept ($(basename "$artifact" | cut -d- -f1))" >&2
      rm "$artifact"
    done
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "$elapsed" "${executions:-0}" "$result" >> "$log"
  echo "fuzz.sh: $t: $result, ${executions:-0} inputs in ${elapsed} s"
done
if ((${#failed[@]})); then
  echo "fuzz.sh: findings in: ${failed[*]} (inputs kept under tests/fuzz; fix and commit them)" >&2
  exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets, no findings"
