#!/usr/bin/env bash
# Prefill and decode speed of a model with MedGemma 4B's real dimensions (random weights, bf16), with the
# thread count given (default 2). Writes the full4b test model (8.6 GB, about 3 minutes) if it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
model=models/full4b
if [[ ! -f $model/medlab_test_model.json ]]; then
  rm -rf "$model"
  build/medlab make-test-model --preset full4b --seed 1 --out "$model"
fi
# A 264-token prompt (chat template included); 32 generated tokens.
prompt=$(printf 'The chest radiograph shows clear lungs without focal consolidation, effusion or pneumothorax. %.0s' {1..15})
/usr/bin/time -f "peak RSS %M KiB" build/medlab run --model "$model" --prompt "$prompt" --max-new-tokens 32 --ignore-eos \
  --threads "$threads" --json 2>&1 >/tmp/medlab-bench.json | grep "peak RSS"
python3 - <<'PY'
import json
r = json.load(open("/tmp/medlab-bench.json"))
t = r["timings"]
print(f"isa {r['run']['isa']}, threads {r['threads']}: load {t['load_ms']:.0f} ms | prefill {len(r['prompt_tokens'])} tokens "
      f"{t['prefill_tokens_per_s']:.2f} tokens/s | decode {len(r['tokens'])} tokens {t['decode_tokens_per_s']:.2f} tokens/s")
PY
