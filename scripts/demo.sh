#!/usr/bin/env bash
# The main job on the built-in defaults: a tiny random-weight TEST model answering a sample question.
set -euo pipefail
cd "$(dirname "$0")/.."
model=models/tiny
if [[ ! -f $model/medlab_test_model.json ]]; then
  rm -rf "$model"
  build/medlab make-test-model --preset tiny --seed 1 --out "$model"
fi
build/medlab run --model "$model" --max-new-tokens 32 \
  --prompt "${1:-Describe the findings on this chest radiograph in two sentences.}"
