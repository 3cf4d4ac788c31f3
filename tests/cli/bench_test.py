#!/usr/bin/env python3
"""medlab bench on the tiny test model: the JSON report has every figure, and each is consistent with the
model and the options (never a timing threshold). Prints one line per check and then "N passed, M failed".

    bench_test.py --medlab BIN --workdir DIR
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--medlab", required=True)
parser.add_argument("--workdir", required=True)
args = parser.parse_args()

work = os.path.abspath(args.workdir)
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
models = {}
for preset in ("tiny", "tiny-text"):
    models[preset] = os.path.join(work, preset)
    subprocess.run([args.medlab, "make-test-model", "--preset", preset, "--seed", "3", "--out", models[preset]],
                   check=True, stdout=subprocess.DEVNULL)

passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else f": {detail}"))
    passed, failed = passed + bool(ok), failed + (not ok)


def bench(*extra):
    return subprocess.run([args.medlab, "bench", *extra], capture_output=True, text=True)


def tensor_bytes(model_dir):
    """Bytes of tensor data in the folder's safetensors files, from their headers; and of the text part."""
    total = text = 0
    for name in sorted(os.listdir(model_dir)):
        if not name.endswith(".safetensors"):
            continue
        with open(os.path.join(model_dir, name), "rb") as f:
            header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
        for key, info in header.items():
            if key == "__metadata__":
                continue
            size = info["data_offsets"][1] - info["data_offsets"][0]
            total += size
            text += size if "language_model" in key else 0
    return total, text


config = json.load(open(os.path.join(models["tiny"], "config.json")))
text_config = config["text_config"]
r = bench("--model", models["tiny"], "--threads", "2", "-p", "16,40", "-n", "8", "--image", "synthetic", "--accuracy", "3",
          "--json")
check("bench --json exits 0", r.returncode == 0, r.stderr)
report = json.loads(r.stdout)

check("threads and repeat echoed", report["threads"] == 2 and report["repeat"] == 1, report)
check("quant is none without --quant", report["quant"] == "none", report["quant"])
check("load time positive", report["load_ms"] > 0, report["load_ms"])
total, text = tensor_bytes(models["tiny"])
check("weight bytes are the checkpoint's tensor bytes", report["weight_bytes"] == total, (report["weight_bytes"], total))
check("text weight bytes are the language model's", report["text_weight_bytes"] == text, (report["text_weight_bytes"], text))
check("context fits the longest prompt and the decode", report["n_ctx"] == max(40 + 1, 16 + 8), report["n_ctx"])
# f32 K and V for every layer; sliding-window layers may hold fewer positions than the context.
kv_per_position = text_config["num_key_value_heads"] * text_config["head_dim"] * 2 * 4
kv_full = text_config["num_hidden_layers"] * report["n_ctx"] * kv_per_position
check("KV bytes are whole positions, at most the full context", 0 < report["kv_bytes"] <= kv_full
      and report["kv_bytes"] % kv_per_position == 0, (report["kv_bytes"], kv_full))
check("one prompt figure per size, in order", [p["tokens"] for p in report["prompt"]] == [16, 40], report["prompt"])
check("prompt speeds agree with their times",
      all(p["ms"] > 0 and abs(p["tokens_per_s"] - 1000 * p["tokens"] / p["ms"]) < 1e-6 * p["tokens_per_s"]
          for p in report["prompt"]), report["prompt"])
decode = report["decode"]
check("decode runs n - 1 steps after the first prompt size",
      decode["tokens"] == 8 and decode["steps"] == 7 and decode["after_prompt_tokens"] == 16, decode)
check("decode speed positive", decode["ms"] > 0 and decode["tokens_per_s"] > 0, decode)
image = report.get("image", {})
check("synthetic image is 896 x 896", image.get("width") == 896 and image.get("height") == 896, image)
tokens_per_image = config["mm_tokens_per_image"]
check("image question holds the image's soft tokens", image.get("prompt_tokens", 0) > tokens_per_image, image)
check("first answer token comes after the encode",
      0 < image.get("encode_ms", 0) <= image.get("first_token_ms", 0), image)
text_accuracy, image_accuracy = report.get("fast_vs_exact", {}), image.get("fast_vs_exact", {})
check("--accuracy compares that many prompt positions", text_accuracy.get("positions") == 3, text_accuracy)
check("--accuracy with --image compares that many answer positions", image_accuracy.get("answer_positions") == 3
      and 0 <= image_accuracy.get("top1_agreement", -1) <= 1 and image_accuracy.get("mean_kl", -1) >= 0, image_accuracy)
# Fast soft tokens differ from exact only by bf16 rounding (nothing at all where fast runs exact kernels).
check("fast soft tokens stay close to exact", 0 <= image_accuracy.get("soft_token_relative_error", -1) < 0.05,
      image_accuracy)
check("peak RSS covers the weights and is below 4 GB", total < report["peak_rss_bytes"] < 4e9, report["peak_rss_bytes"])

r = bench("--model", models["tiny-text"], "-p", "8", "-n", "2", "--threads", "1")
check("table output names each figure", r.returncode == 0 and all(
    s in r.stdout for s in ("load", "prompt, 8 tokens", "decode, 1 steps after 8 tokens", "KV cache", "peak RSS")), r.stdout + r.stderr)
check("no image rows without --image", "image" not in r.stdout, r.stdout)

plain = json.loads(bench("--model", models["tiny-text"], "-p", "8", "-n", "2", "--json").stdout)
r = bench("--model", models["tiny-text"], "-p", "8", "-n", "2", "--quant", "q8_0", "--precision", "fast", "--json")
quantized = json.loads(r.stdout) if r.returncode == 0 else {}
check("--quant q8_0 --precision fast echoed", quantized.get("quant") == "q8_0" and quantized.get("precision") == "fast",
      r.stderr)
check("--quant q8_0 shrinks the text weights", 0 < quantized.get("text_weight_bytes", 0) < plain["text_weight_bytes"],
      (quantized.get("text_weight_bytes"), plain["text_weight_bytes"]))

for name, extra, expected in [
    ("an image for a text-only model", ["--model", models["tiny-text"], "--image", "synthetic"], "text-only"),
    ("a zero prompt size", ["--model", models["tiny-text"], "-p", "0"], "prompt size 0"),
    ("an unknown --quant", ["--model", models["tiny-text"], "--quant", "q3_x"], "q3_x"),
    ("a context beyond the model's", ["--model", models["tiny-text"], "-p", "100000"], "max_position_embeddings"),
]:
    r = bench(*extra)
    lines = r.stderr.strip().splitlines()
    check(f"refuses {name} with one error line", r.returncode == 1 and len(lines) >= 1 and expected in lines[-1]
          and lines[-1].startswith("medlab: error:"), (r.returncode, r.stderr))

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
