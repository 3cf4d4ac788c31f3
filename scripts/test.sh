#!/usr/bin/env bash
# Runs every test: unit tests beside the code, tokenizer parity, parity with llama.cpp, pydicom and Pillow,
# the CLI and server tests, and the fuzz corpora's replay (ctest); then the suite, less the parity
# comparisons, under AddressSanitizer + UBSan (scripts/test-sanitizers.sh asan); then each fuzz target
# briefly (scripts/fuzz.sh --brief). The ThreadSanitizer run of the server and scheduler tests is
# scripts/test-sanitizers.sh tsan: it rebuilds everything once more, which CI's time does not allow.
#
#   scripts/test.sh            all of it (what CI runs)
#   scripts/test.sh --quick    the ctest suite of build/ only; extra arguments go to ctest (-R NAME, -L fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ${1:-} == --quick ]]; then
  shift
  exec ctest --test-dir build --output-on-failure -j 2 "$@"
fi
ctest --test-dir build --output-on-failure -j 2 "$@"
# A passing run's files (about 3 GB of models and outputs) go before the sanitizer build needs the disk.
rm -rf build/test-work
./scripts/test-sanitizers.sh asan
./scripts/fuzz.sh --brief
