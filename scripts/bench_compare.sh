#!/usr/bin/env bash
# medlab next to llama.cpp's prebuilt CPU build (node-llama-cpp, installed by `MEDLAB_SPEEDPEER=1 scripts/setup.sh`)
# on the same GGUF files, same threads, same prompt: prompt tokens/s, decode tokens/s, peak RSS and load time
# for each weight type, with medlab/llama.cpp ratios and the machine probe's floors, as a markdown table.
#
#   scripts/bench_compare.sh                       # models/full4b, bf16 q8_0 q4_0 q4_k_m, 2 threads
#   THREADS=2 TYPES="bf16 q8_0" PROMPT=256 GENERATE=32 REPEAT=3 scripts/bench_compare.sh
#
# MEDLAB_INPUT=gguf (default) runs medlab on the GGUF files too; MEDLAB_INPUT=hf runs it on the Hugging Face
# folder instead, quantized at load with --quant (the same weights for bf16, the same block format otherwise).
# PRECISION=fast (default) lets medlab quantize activations for q8_0 and q4_0 matrices as llama.cpp does;
# PRECISION=exact widens the weights to f32 instead. Each run starts with the file in the page cache, so load
# times are the warm ones.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${MODEL:-models/full4b}
threads=${THREADS:-2}
medlab_input=${MEDLAB_INPUT:-gguf}
default_types="bf16 q8_0 q4_0 q4_k_m"
[[ $medlab_input == gguf ]] || default_types="bf16 q8_0 q4_0"  # --quant makes no Q4_K_M mix
types=${TYPES:-$default_types}
prompt=${PROMPT:-256}
generate=${GENERATE:-32}
repeat=${REPEAT:-3}  # runs of each measurement, the median reported: this VM's memory rate drifts between runs
precision=${PRECISION:-fast}
medlab=${MEDLAB:-build/medlab}
probe=${PROBE:-build/bench/machine_probe}
out=${OUT:-models/bench-compare}

if [[ ! -d tools/speedpeer/node_modules/node-llama-cpp ]]; then
  echo "bench_compare: the speed peer is not installed; run MEDLAB_SPEEDPEER=1 scripts/setup.sh" >&2
  exit 1
fi
for tool in "$medlab" "$probe"; do
  [[ -x $tool ]] || { echo "bench_compare: $tool is missing; build it first (scripts/setup.sh)" >&2; exit 1; }
done
mkdir -p "$out"
name=$(basename "$model")

echo "bench_compare: machine probe" >&2
"$probe" --json >"$out/probe.json"
cut -d' ' -f1-3 /proc/loadavg >"$out/loadavg-start"

for type in $types; do
  gguf="$out/$name-$type.gguf"
  if [[ ! -f $gguf ]]; then
    echo "bench_compare: converting $model to $gguf" >&2
    "$medlab" convert --to gguf "$model" "$gguf.partial" --type "$type" >&2
    mv "$gguf.partial" "$gguf"
  fi
  echo "bench_compare: llama.cpp, $type" >&2
  cat "$gguf" >/dev/null
  node tools/speedpeer/bench.mjs --model "$gguf" --threads "$threads" -p "$prompt" -n "$generate" --repeat "$repeat" --json \
    >"$out/llama-$type.json"
  echo "bench_compare: medlab, $type" >&2
  if [[ $medlab_input == gguf ]]; then
    cat "$gguf" >/dev/null
    "$medlab" bench --model "$gguf" --precision "$precision" --threads "$threads" -p "$prompt" -n "$generate" --repeat "$repeat" --json >"$out/medlab-$type.json"
  else
    quant=()
    [[ $type == bf16 ]] || quant=(--quant "$type")
    cat "$model"/*.safetensors >/dev/null
    "$medlab" bench --model "$model" "${quant[@]}" --precision "$precision" --threads "$threads" -p "$prompt" -n "$generate" --repeat "$repeat" --json \
      >"$out/medlab-$type.json"
  fi
done

cut -d' ' -f1-3 /proc/loadavg >"$out/loadavg-end"

python3 - "$out" "$types" "$medlab_input" >"$out/table.md" <<'PY'
import json, sys
out, types, medlab_input = sys.argv[1], sys.argv[2].split(), sys.argv[3]
loadavg = [open(f"{out}/loadavg-{w}").read().split() for w in ("start", "end")]
probe = json.load(open(f"{out}/probe.json"))
rows = []
for t in types:
    m, l = json.load(open(f"{out}/medlab-{t}.json")), json.load(open(f"{out}/llama-{t}.json"))
    floor = probe["floors"].get(t)
    if floor is None and t != "bf16":  # a mix of block types (q4_k_m): the text weights medlab reads per token
        floor = {"weight_bytes": m["text_weight_bytes"],
                 "decode_tokens_per_s": max(probe["read_gbps"].values()) * 1e9 / m["text_weight_bytes"],
                 "prompt_tokens_per_s": probe["int8_peak_gops"] * 1e9 / probe["prompt_flops_per_token"]}
    rows.append((t, m, l, floor))
first = rows[0]
print(f"medlab ({first[1]['isa']} kernels, --precision {first[1]['precision']}, input: "
      f"{'the GGUF file' if medlab_input == 'gguf' else 'the HF folder, --quant at load'}) "
      f"against llama.cpp {first[2]['llama_cpp_release']} via node-llama-cpp {first[2]['node_llama_cpp']} ({first[2]['build']}, CPU variant "
      f"{first[2]['cpu_variant']}, flash attention {first[2]['flash_attention']}); {first[1]['threads']} threads, "
      f"prompt {first[1]['prompt'][0]['tokens']} tokens, decode {first[1]['decode']['tokens']} tokens after it, the "
      f"median of {first[1]['repeat']} runs each; "
      f"load average {' '.join(loadavg[0])} at the start, {' '.join(loadavg[1])} at the end.\n")
print("| type | what | medlab | llama.cpp | medlab / llama.cpp | floor (probe) |")
print("|---|---|---:|---:|---:|---:|")
for t, m, l, floor in rows:
    mp, lp = m["prompt"][0]["tokens_per_s"], l["prompt"][0]["tokens_per_s"]
    md, ld = m["decode"]["tokens_per_s"], l["decode"]["tokens_per_s"]
    mr, lr = m["peak_rss_bytes"] / 1e9, l["peak_rss_bytes"] / 1e9
    ml, ll = m["load_ms"] / 1000, l["load_ms"] / 1000
    fp = f"{floor['prompt_tokens_per_s']:.1f}" if floor else ""
    fd = f"{floor['decode_tokens_per_s']:.2f}" if floor else ""
    fw = f"{floor['weight_bytes'] / 1e9:.2f} (text weights)" if floor else ""
    print(f"| {t} | prompt, tokens/s | {mp:.2f} | {lp:.2f} | {mp / lp:.2f} | {fp} |")
    print(f"| {t} | decode, tokens/s | {md:.2f} | {ld:.2f} | {md / ld:.2f} | {fd} |")
    print(f"| {t} | peak RSS, GB | {mr:.2f} | {lr:.2f} | {mr / lr:.2f} | {fw} |")
    print(f"| {t} | load, s | {ml:.2f} | {ll:.2f} | {ml / ll:.2f} | |")
bw, fma, i8 = probe["read_gbps"], probe["f32_fma_gflops"], probe["int8_gops"]
print(f"\nMachine probe: memory read {bw['1']:.1f} GB/s (1 thread), {bw['2']:.1f} GB/s (2 threads); f32 FMA "
      f"{fma['1']:.0f} / {fma['2']:.0f} GFLOP/s (AVX2), {probe['avx512_fma_gflops']:.0f} (AVX-512, 2 threads); bf16 dot "
      f"{probe['bf16_dot_gflops']:.0f} GFLOP/s; int8 maddubs {i8['1']:.0f} / {i8['2']:.0f} GOP/s, VNNI "
      f"{probe['vnni_gops']:.0f} (0: not on this CPU). Floors, for MedGemma 4B's decoder: decode = weight bytes read "
      "per token / the better bandwidth; prompt = "
      f"{probe['prompt_flops_per_token'] / 1e9:.2f} GFLOP per token / the best bf16 or f32 peak (bf16) or the best int8 "
      "peak (the block types).")
PY
cat "$out/table.md"
