#!/usr/bin/env python3
"""--lora and --lora-merge end to end on the tiny test model with a random adapter from make-test-model:
answers that differ from the base model's, scale 0 giving the base's tokens, merged and run-time adapters
agreeing, the adapter's SHA-256 (what `sha256sum adapter_config.json adapter_model.safetensors | sha256sum`
prints) in the run manifest of run, batch and serve, batch --resume refusing rows made without the adapter,
weights.lock with adapters (PASS, and FAIL naming the adapter when it is left out or added), and bad --lora
arguments. Prints one line per check and exits 1 if any failed. Standard library only.

    lora_test.py --medlab BIN --workdir DIR
"""
import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
from serve_support import data_uri, png_bytes, start_server  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--medlab", required=True)
parser.add_argument("--workdir", required=True)
args = parser.parse_args()

work = os.path.abspath(args.workdir)
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
env = dict(os.environ, XDG_CACHE_HOME=os.path.join(work, "cache"))  # the hash cache stays in the work folder

failures = []


def check(condition, what):
    print(("ok    " if condition else "FAIL  ") + what, flush=True)
    if not condition:
        failures.append(what)


def medlab(*arguments):
    return subprocess.run([args.medlab, *arguments], capture_output=True, text=True, timeout=300, env=env)


def made(result, what):
    if result.returncode != 0:
        sys.exit(f"{what} failed ({result.returncode}): {result.stderr.strip()[-600:]}")
    return result


# f32 weights, so that merging adds no rounding of its own and merged and run-time tokens can be compared.
model = os.path.join(work, "tiny")
made(medlab("make-test-model", "--preset", "tiny", "--seed", "3", "--dtype", "f32", "--out", model), "make-test-model")
adapter = os.path.join(work, "chest-lora")
made(medlab("make-test-model", "--preset", "tiny", "--adapter", "--seed", "5", "--out", adapter), "make-test-model --adapter")


def listing_sha256(folder, names):
    lines = ""
    for name in names:
        with open(os.path.join(folder, name), "rb") as f:
            lines += hashlib.sha256(f.read()).hexdigest() + "  " + name + "\n"
    return hashlib.sha256(lines.encode()).hexdigest()


adapter_sha256 = listing_sha256(adapter, ["adapter_config.json", "adapter_model.safetensors"])

RUN = ["run", "--model", model, "--prompt", "Describe the findings.", "--json", "-n", "32", "--ignore-eos", "--threads", "2"]


def run(*extra):
    result = made(medlab(*RUN, *extra), "run " + " ".join(extra))
    return json.loads(result.stdout), result.stderr


base, _ = run()
adapted, stderr = run("--lora", adapter)
check(adapted["tokens"] != base["tokens"], "--lora changes the answer's tokens")
check("adapters" not in base["run"], "a run without adapters has no \"adapters\" in its manifest")
check(adapted["run"].get("adapters") == [{"name": "chest-lora", "sha256": adapter_sha256, "scale": 1.0, "merged": False}],
      "run.adapters names the adapter with the SHA-256 sha256sum gives: %s" % adapted["run"].get("adapters"))
check(adapted["run"]["model_sha256"] == base["run"]["model_sha256"], "model_sha256 stays the base weights' hash")
check(f"LoRA adapter {adapter}:" in stderr and "modules adapted" in stderr and "applied at run time" in stderr,
      "stderr names the adapter, its modules and how it is applied: %r" % stderr.strip()[-300:])

zero, _ = run("--lora", adapter + ":0")
check(zero["tokens"] == base["tokens"], "--lora DIR:0 gives the base model's tokens")
check(zero["run"]["adapters"][0]["scale"] == 0, "scale 0 is in the manifest")
half, _ = run("--lora", adapter + ":0.5")
check(half["run"]["adapters"][0]["scale"] == 0.5, "scale 0.5 is in the manifest as 0.5")

merged, stderr = run("--lora", adapter, "--lora-merge")
check(merged["tokens"] == adapted["tokens"], "--lora-merge gives the run-time adapter's 32 greedy tokens")
check(merged["run"]["adapters"][0]["merged"] is True and merged["run"]["adapters"][0]["sha256"] == adapter_sha256,
      "a merged adapter is marked merged, with the same SHA-256")
check("merged into the weights" in stderr, "stderr says the adapter was merged")

quantized_base, _ = run("--quant", "q8_0")
quantized, _ = run("--quant", "q8_0", "--lora", adapter)
check(quantized["tokens"] != quantized_base["tokens"], "--lora on a base quantized at load (q8_0) changes the answer")

# Bad arguments: one clear error, never a crash.
missing = os.path.join(work, "no-such-lora")
result = medlab(*RUN, "--lora", missing)
check(result.returncode != 0 and missing in result.stderr, "a missing --lora folder: error naming it: %r" % result.stderr.strip())
result = medlab(*RUN, "--lora-merge")
check(result.returncode != 0 and "--lora" in result.stderr, "--lora-merge without --lora is refused: %r" % result.stderr.strip())
result = medlab(*RUN, "--lora", model)
check(result.returncode != 0 and "adapter_config.json" in result.stderr,
      "a model folder given as --lora: error naming adapter_config.json: %r" % result.stderr.strip()[-300:])

# batch: rows carry the adapter; resuming rows made without it is refused by name. serve: the same manifest.
images = os.path.join(work, "images")
os.makedirs(images)
with open(os.path.join(images, "film.png"), "wb") as f:
    f.write(png_bytes(32, 24, lambda x, y: ((x * 7) % 256, (y * 9) % 256, (x * y) % 256)))
BATCH = ["batch", "--model", model, "--images", images, "-q", "Any findings?", "-n", "8", "--threads", "2"]
out = os.path.join(work, "rows.jsonl")
made(medlab(*BATCH, "--lora", adapter, "--out", out), "batch --lora")
with open(out) as f:
    row = json.loads(f.readline())
check(row["run"].get("adapters") == adapted["run"]["adapters"], "batch rows carry run.adapters")
plain_out = os.path.join(work, "plain.jsonl")
made(medlab(*BATCH, "--out", plain_out), "batch")
result = medlab(*BATCH, "--lora", adapter, "--out", plain_out, "--resume")
check(result.returncode == 1 and "adapters" in result.stderr,
      "resuming rows made without the adapter: refused, names adapters: %r" % result.stderr.strip()[-300:])
result = medlab(*BATCH, "--out", plain_out, "--resume")
check(result.returncode == 0, "resuming a run without adapters still works: %r" % result.stderr.strip()[-300:])

with open(os.path.join(work, "serve.log"), "w") as log:
    server, host, port = start_server([args.medlab, "serve", "--model", model, "--port", "0", "--threads", "2",
                                       "--lora", adapter], log)
    try:
        body = {"question": "Any findings?", "max_new_tokens": 8,
                "image": data_uri("image/png", open(os.path.join(images, "film.png"), "rb").read())}
        request = urllib.request.Request("http://%s:%d/api/predict" % (host, port), data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            served = json.loads(response.read())
        check(served["run"] == row["run"] and served["tokens"] == row["tokens"],
              "serve --lora answers with the batch row's tokens and run manifest")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)

# weights.lock with the adapter.
lock = os.path.join(work, "adapted.lock")
result = medlab("verify", "--model", model, "--lora", adapter, "--write-lock", lock, "--threads", "2")
check(result.returncode == 0 and f"adapter chest-lora: sha256 {adapter_sha256}" in result.stdout,
      "verify --write-lock --lora writes the lock and names the adapter: %r" % (result.stdout + result.stderr)[-300:])
with open(lock) as f:
    locked = json.load(f)
check(locked.get("adapters") == [{"name": "chest-lora", "sha256": adapter_sha256, "scale": 1.0, "merged": False}],
      "the lock holds the adapter: %s" % locked.get("adapters"))
result = medlab("verify", "--model", model, "--lora", adapter, "--lock", lock, "--threads", "2")
check(result.returncode == 0 and "adapter chest-lora sha256 ... ok" in result.stdout and "PASS" in result.stdout,
      "verify --lock --lora: PASS: %r" % (result.stdout + result.stderr)[-400:])
result = medlab("verify", "--model", model, "--lock", lock, "--threads", "2")
check(result.returncode == 1 and "adapter chest-lora ... MISSING" in result.stdout and "FAIL" in result.stderr,
      "verify --lock without --lora: FAIL naming the adapter: %r" % (result.stdout + result.stderr)[-400:])
result = medlab("verify", "--model", model, "--lora", adapter + ":0.5", "--lock", lock, "--threads", "2")
check(result.returncode == 1 and "adapter chest-lora sha256 ... MISMATCH" in result.stdout,
      "verify with another scale: FAIL on the adapter: %r" % (result.stdout + result.stderr)[-400:])
base_lock = os.path.join(work, "base.lock")
made(medlab("verify", "--model", model, "--write-lock", base_lock, "--threads", "2"), "verify --write-lock")
with open(base_lock) as f:
    check("adapters" not in json.load(f), "a lock without adapters has no \"adapters\" field")
result = medlab("verify", "--model", model, "--lora", adapter, "--lock", base_lock, "--threads", "2")
check(result.returncode == 1 and "adapter chest-lora ... EXTRA" in result.stdout and "fingerprint" in result.stdout,
      "verify --lora against a plain model's lock: FAIL naming the adapter: %r" % (result.stdout + result.stderr)[-400:])

print(f"{len(failures)} failed" if failures else "all passed")
sys.exit(1 if failures else 0)
