#!/usr/bin/env python3
"""Bad input through the medlab binary: each case must end with exit code 1 (not a crash, not a hang) and
one error line on stderr that names the cause. Prints one line per case and then "N passed, M failed".

    bad_input_test.py --medlab BIN --workdir DIR
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
base = os.path.join(work, "base")
subprocess.run([args.medlab, "make-test-model", "--preset", "tiny-text", "--seed", "3", "--out", base],
               check=True, stdout=subprocess.DEVNULL)


def variant(name):
    """A copy of the base model whose files can be changed one at a time."""
    folder = os.path.join(work, name)
    shutil.copytree(base, folder, copy_function=os.link)  # hard links: change a file by replacing it
    return folder


def replace_file(path, data):
    os.unlink(path)
    with open(path, "wb") as f:
        f.write(data)


def edit_config(folder, change):
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        config = json.load(f)
    change(config)
    replace_file(path, json.dumps(config).encode())


def edit_safetensors_header(folder, change):
    path = os.path.join(folder, "model.safetensors")
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    change(header)
    text = json.dumps(header, separators=(",", ":")).encode()
    assert len(text) <= length, "edited header must not grow"
    replace_file(path, data[:8] + text.ljust(length) + data[8 + length:])


def first_tensor(header):
    return sorted(k for k in header if k != "__metadata__")[0]


def truncated(folder):
    path = os.path.join(folder, "model.safetensors")
    with open(path, "rb") as f:
        data = f.read()
    replace_file(path, data[: len(data) // 2])


def offsets_past_end(header):
    header[first_tensor(header)]["data_offsets"][1] = 1 << 40


def unknown_architecture(config):
    config["architectures"] = ["LlamaForCausalLM"]


def wrong_intermediate_size(config):
    config["intermediate_size"] += 8


cases = []  # (name, command, text the error must contain)
run = [args.medlab, "run", "--prompt", "Is there a pleural effusion?", "-n", "4", "--model"]

cases.append(("missing model folder", run + [os.path.join(work, "nowhere")], "nowhere"))
folder = variant("no-weights")
os.unlink(os.path.join(folder, "model.safetensors"))
cases.append(("missing weight file", run + [folder], "safetensors"))
folder = variant("no-tokenizer")
os.unlink(os.path.join(folder, "tokenizer.json"))
cases.append(("missing tokenizer", run + [folder], "tokenizer.json"))
folder = variant("truncated")
truncated(folder)
cases.append(("truncated safetensors", run + [folder], "model.safetensors"))
folder = variant("offsets")
edit_safetensors_header(folder, offsets_past_end)
with open(os.path.join(folder, "model.safetensors"), "rb") as f:
    (length,) = struct.unpack("<Q", f.read(8))
    name = first_tensor(json.loads(f.read(length)))
cases.append(("header offsets past the end", run + [folder], name))
folder = variant("shape")
edit_config(folder, wrong_intermediate_size)
cases.append(("wrong shape", run + [folder], "mlp."))
folder = variant("architecture")
edit_config(folder, unknown_architecture)
cases.append(("unknown architecture", run + [folder], "LlamaForCausalLM"))
cases.append(("prompt longer than the context", run + [base, "--ctx-size", "8"], "context"))
not_image = os.path.join(work, "notes.png")
with open(not_image, "w") as f:
    f.write("not an image")
tiny_mm = os.path.join(work, "tiny")
subprocess.run([args.medlab, "make-test-model", "--preset", "tiny", "--seed", "3", "--out", tiny_mm],
               check=True, stdout=subprocess.DEVNULL)
cases.append(("text file named .png", run + [tiny_mm, "--image", not_image], "notes.png"))
cases.append(("malformed chat file", [args.medlab, "run", "--model", base, "--chat", not_image], "notes.png"))

passed = failed = 0
for name, command, expected in cases:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        errors = [line for line in result.stderr.splitlines() if line.startswith("medlab: error:")]
        problems = []
        if result.returncode != 1:
            problems.append(f"exit code {result.returncode}, expected 1")
        if len(errors) != 1:
            problems.append(f"{len(errors)} error lines, expected 1: {result.stderr.strip()!r}")
        elif expected not in errors[0]:
            problems.append(f"error does not name {expected!r}: {errors[0]!r}")
    except subprocess.TimeoutExpired:
        problems = ["timed out"]
    if problems:
        failed += 1
        print(f"FAIL {name}: {'; '.join(problems)}")
    else:
        passed += 1
        print(f"PASS {name}: {errors[0]}")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
