#!/usr/bin/env bash
# The main job on the built-in defaults: a tiny random-weight TEST model answering a sample question, then the
# whole reproduction flow (answers over the synthetic test set, scores, reports) with examples/tiny-synthetic.json.
set -euo pipefail
cd "$(dirname "$0")/.."
model=models/tiny
if [[ ! -f $model/medlab_test_model.json ]]; then
  rm -rf "$model"
  build/medlab make-test-model --preset tiny --seed 1 --out "$model"
fi
build/medlab run --model "$model" --max-new-tokens 32 \
  --prompt "${1:-Describe the findings on this chest radiograph in two sentences.}"

echo
rm -rf build/demo
build/medlab make-test-set --out build/demo/testset --per-category 2 --size 256
build/medlab repro examples/tiny-synthetic.json
echo "report: build/demo/reports/report.html (a random-weight model: its scores are near zero by design)"
