#!/usr/bin/env bash
# Runs every test: unit tests beside the code, tokenizer parity, and parity with llama.cpp.
set -euo pipefail
cd "$(dirname "$0")/.."
ctest --test-dir build --output-on-failure -j 2 "$@"
