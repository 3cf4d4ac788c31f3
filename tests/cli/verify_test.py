#!/usr/bin/env python3
"""medlab verify end to end on the tiny test models: a lock written twice is the same bytes, the model
passes on any thread count and kernel set, a flipped byte fails on its file's SHA-256, a re-written weight
(same size) fails on the SHA-256 and the fingerprint, and missing, damaged or foreign locks are refused by
name. Prints one line per case and then "N passed, M failed". Standard library only.

    verify_test.py --medlab BIN --workdir DIR
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--medlab", required=True)
parser.add_argument("--workdir", required=True)
args = parser.parse_args()

work = os.path.abspath(args.workdir)
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)


def make_model(preset, name):
    folder = os.path.join(work, name)
    subprocess.run([args.medlab, "make-test-model", "--preset", preset, "--seed", "4", "--out", folder],
                   check=True, stdout=subprocess.DEVNULL)
    return folder


def verify(model, *flags, threads="2"):
    return subprocess.run([args.medlab, "verify", "--model", model, "--threads", threads, *flags],
                          capture_output=True, text=True, timeout=300)


def variant(base, name):
    """A copy of a model whose files can be changed one at a time (hard links: replace a file to change it)."""
    folder = os.path.join(work, name)
    shutil.copytree(base, folder, copy_function=os.link)
    return folder


def replace_file(path, data):
    os.unlink(path)
    with open(path, "wb") as f:
        f.write(data)


def tensor_location(folder, suffix, prefix):
    """(file name, absolute offset of the data, dtype) of the one tensor named prefix...suffix."""
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".safetensors"):
            continue
        with open(os.path.join(folder, name), "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        for tensor, info in header.items():
            if tensor != "__metadata__" and tensor.startswith(prefix) and tensor.endswith(suffix):
                return name, 8 + length + info["data_offsets"][0], info["dtype"]
    raise SystemExit(f"{folder}: no tensor {prefix}...{suffix}")


def lock_figure(path):
    with open(path) as f:
        return float(json.load(f)["fingerprint"]["top3_logit_l2"])


results = []  # (name, problems)


def case(name, problems):
    results.append((name, problems))
    print(("FAIL " if problems else "PASS ") + name + (": " + "; ".join(problems) if problems else ""))


def expect(result, code, stdout_has=(), stderr_has=()):
    problems = []
    if result.returncode != code:
        problems.append(f"exit code {result.returncode}, expected {code}: {result.stderr.strip()[-400:]!r}")
    problems += [f"stdout lacks {t!r}" for t in stdout_has if t not in result.stdout]
    problems += [f"stderr lacks {t!r}" for t in stderr_has if t not in result.stderr]
    return problems


tiny = make_model("tiny", "tiny")
lock = os.path.join(work, "tiny.lock")
again = os.path.join(work, "tiny-again.lock")
result = verify(tiny, "--write-lock", lock)
case("write-lock", expect(result, 0, ["wrote " + lock, "top3_logit_l2"]))
verify(tiny, "--write-lock", again)
with open(lock, "rb") as a, open(again, "rb") as b:
    case("a lock written twice is the same bytes", [] if a.read() == b.read() else ["the two locks differ"])

start = time.monotonic()
result = verify(tiny, "--lock", lock)
elapsed = time.monotonic() - start
case(f"verify passes ({elapsed:.1f} s)",
     expect(result, 0, ["sha256 model-00001-of-00002.safetensors ... ok", "fingerprint top20_ids ... ok", "PASS"]))
case("verify passes with --threads 1", expect(verify(tiny, "--lock", lock, threads="1"), 0, ["PASS"]))
case("verify passes with --isa scalar", expect(verify(tiny, "--lock", lock, "--isa", "scalar"), 0, ["PASS"]))
scalar_lock = os.path.join(work, "tiny-scalar.lock")
verify(tiny, "--write-lock", scalar_lock, "--isa", "scalar")
best, scalar = lock_figure(lock), lock_figure(scalar_lock)
print(f"top3_logit_l2: best kernels {best:.6f}, scalar {scalar:.6f}, relative difference {abs(best - scalar) / best:.2e}")
result = verify(tiny, "--lock", lock, "--json")
try:
    report = json.loads(result.stdout)
    case("--json report", [] if report["result"] == "PASS" and not report["differences"] else [f"report {report}"])
except (ValueError, KeyError) as e:
    case("--json report", [f"not a JSON report ({e}): {result.stdout[:200]!r}"])

# One flipped bit inside a tensor's data: the header still parses, the file's SHA-256 changes.
flipped = variant(tiny, "flipped")
name, offset, _ = tensor_location(flipped, "layers.0.mlp.down_proj.weight", "language_model.")
with open(os.path.join(flipped, name), "rb") as f:
    data = bytearray(f.read())
data[offset + 100] ^= 0x01
replace_file(os.path.join(flipped, name), bytes(data))
other = ({"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"} - {name}).pop()
result = verify(flipped, "--lock", lock)
case("flipped byte fails on its file's SHA-256",
     expect(result, 1, [f"sha256 {name} ... MISMATCH", f"sha256 {other} ... ok", "model_sha256 ... MISMATCH"], ["FAIL: "]))

# One weight value re-written (same size): in the tied embedding's row of the locked top-1 token, which is
# that token's output projection, so its first-step logit moves by the change times one hidden value.
rewritten = variant(tiny, "rewritten")
name, offset, dtype = tensor_location(rewritten, "model.embed_tokens.weight", "language_model.")
with open(lock) as f:
    top1 = json.load(f)["fingerprint"]["top20_ids"][0]
with open(os.path.join(rewritten, name), "rb") as f:
    data = bytearray(f.read())
size = len(data)
assert dtype == "BF16", dtype
with open(os.path.join(rewritten, "config.json")) as f:
    hidden = json.load(f)["text_config"]["hidden_size"]
row = offset + top1 * hidden * 2
data[row:row + 2] = struct.pack("<H", 0x4100)  # 8.0 in bf16
assert len(data) == size
replace_file(os.path.join(rewritten, name), bytes(data))
result = verify(rewritten, "--lock", lock)
case("re-written weight fails on the SHA-256 and the fingerprint",
     expect(result, 1, [f"sha256 {name} ... MISMATCH", "fingerprint top3_logit_l2 ... MISMATCH expected"], ["FAIL: "]))

# A shard gone: nothing to fingerprint; the loader's error names it.
no_shard = variant(tiny, "no-shard")
os.unlink(os.path.join(no_shard, "model-00002-of-00002.safetensors"))
case("model that does not load", expect(verify(no_shard, "--lock", lock), 1, [],
                                        ["FAIL: the model does not load", "model-00002-of-00002.safetensors"]))

missing = os.path.join(work, "nowhere.lock")
case("missing lock", expect(verify(tiny, "--lock", missing), 1, [], [missing + ": no such lock file", "--write-lock"]))
damaged = os.path.join(work, "damaged.lock")
with open(damaged, "w") as f:
    f.write("{\"format\": \"medlab-weights-lock/1\", ")
case("lock that is not JSON", expect(verify(tiny, "--lock", damaged), 1, [], [damaged + ": not valid JSON"]))
with open(lock) as f:
    broken = json.load(f)
del broken["files"][1]["sha256"]
with open(damaged, "w") as f:
    json.dump(broken, f)
case("lock without a field", expect(verify(tiny, "--lock", damaged), 1, [], [damaged + ": field files[1].sha256 missing"]))
case("neither --lock nor --write-lock", expect(verify(tiny), 1, [], ["--write-lock"]))

text = make_model("tiny-text", "text")
text_lock = os.path.join(work, "text.lock")
case("text-only model: write-lock", expect(verify(text, "--write-lock", text_lock), 0, ["wrote " + text_lock]))
with open(text_lock) as f:
    image = json.load(f)["fingerprint"]["image"]
case("text-only model: no image in the fingerprint", [] if image == "none" else [f"image {image!r}"])
case("text-only model: verify passes", expect(verify(text, "--lock", text_lock), 0, ["PASS"]))
case("another model's lock names the files missing and extra",
     expect(verify(text, "--lock", lock), 1,
            ["file model-00001-of-00002.safetensors ... MISSING", "file model.safetensors ... EXTRA",
             "fingerprint image ... MISMATCH"], ["FAIL: "]))

failed = sum(1 for _, problems in results if problems)
print(f"{len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
