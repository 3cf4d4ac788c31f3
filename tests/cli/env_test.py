#!/usr/bin/env python3
"""medlab env through the binary: the table, --json, --write-lock then --check, and locks edited the way
another machine would differ. Prints one line per case and then "N passed, M failed".

    env_test.py --medlab BIN --workdir DIR
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--medlab", required=True)
parser.add_argument("--workdir", required=True)
args = parser.parse_args()

work = os.path.abspath(args.workdir)
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)


def medlab(*argv):
    return subprocess.run([args.medlab, "env", *argv], capture_output=True, text=True, timeout=60)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def edited_lock(name, change):
    """The lock of this machine with `change` applied, as another machine would have written it."""
    lock = json.loads(read(os.path.join(work, "env.lock")))
    change(lock)
    path = os.path.join(work, name)
    with open(path, "w") as f:
        json.dump(lock, f, indent=2)
    return path


passed = failed = 0


def case(name, problems):
    global passed, failed
    if problems:
        failed += 1
        print(f"FAIL {name}: {'; '.join(problems)}")
    else:
        passed += 1
        print(f"PASS {name}")


# The table names every section.
result = medlab()
problems = [] if result.returncode == 0 else [f"exit code {result.returncode}: {result.stderr.strip()}"]
for label in ("engine", "build", "cpu", "kernels", "threads", "libraries", "os", "libpng", "DCMTK"):
    if label not in result.stdout:
        problems.append(f"no {label!r} in {result.stdout!r}")
case("table", problems)

# --json parses and holds every field.
result = medlab("--json")
problems = []
try:
    env = json.loads(result.stdout)
    for section, keys in (("engine", ("version", "commit")), ("build", ("compiler", "flags", "type")),
                          ("cpu", ("model", "logical_cores", "features")), ("kernels", ("isa",)),
                          ("os", ("name", "kernel", "glibc"))):
        for key in keys:
            if env.get(section, {}).get(key) in (None, ""):
                problems.append(f"{section}.{key} empty")
    for library in ("DCMTK", "OpenJPEG", "OpenSSL", "libjpeg-turbo", "libpng", "zlib", "cpp-httplib", "CLI11"):
        if not env.get("libraries", {}).get(library):
            problems.append(f"no version of {library}")
except json.JSONDecodeError as e:
    problems.append(f"not JSON: {e}")
case("--json", problems)

# A lock of this machine checks clean, and writing it twice gives the same bytes.
lock = os.path.join(work, "env.lock")
first = medlab("--write-lock", lock)
first_bytes = read(lock) if first.returncode == 0 else b""
second = medlab("--write-lock", lock)
problems = []
if first.returncode != 0 or second.returncode != 0:
    problems.append(f"--write-lock failed: {first.stderr.strip()} {second.stderr.strip()}")
elif read(lock) != first_bytes:
    problems.append("two writes differ")
elif json.loads(first_bytes) != json.loads(medlab("--json").stdout):
    problems.append("the lock is not what --json prints")
case("write-lock is byte-stable", problems)

result = medlab("--check", lock)
problems = []
if result.returncode != 0:
    problems.append(f"exit code {result.returncode}: {result.stderr.strip()}")
if result.stdout.strip() != "env matches the lock":
    problems.append(f"output {result.stdout!r}")
case("check against its own lock", problems)

# Edited locks: (name, edit, fields that must each get a line, expected exit code).
this_isa = json.loads(first_bytes)["kernels"]["isa"]
other_isa = "scalar" if this_isa != "scalar" else "avx2"


def set_field(section, key, value):
    def change(lock):
        if key is None:
            lock[section] = value
        else:
            lock[section][key] = value
    return change


def several(*changes):
    def change(lock):
        for c in changes:
            c(lock)
    return change


edits = [
    ("isa", set_field("kernels", "isa", other_isa), ["kernels.isa"], 1),
    ("commit", set_field("engine", "commit", "0123456789abcdef0123456789abcdef01234567"), ["engine.commit"], 1),
    ("library version", set_field("libraries", "libpng", "1.6.0"), ["libraries.libpng"], 1),
    ("cpu model", set_field("cpu", "model", "Another CPU 9000"), ["cpu.model"], 0),
    ("informational only", several(set_field("cpu", "model", "Another CPU 9000"), set_field("threads", None, 977),
                                   set_field("libraries", "cpp-httplib", "0.1.0")),
     ["cpu.model", "threads", "libraries.cpp-httplib"], 0),
    ("mixed", several(set_field("kernels", "isa", other_isa), set_field("cpu", "model", "Another CPU 9000"),
                      set_field("libraries", "DCMTK", "3.6.0")),
     ["kernels.isa", "cpu.model", "libraries.DCMTK"], 1),
]
for name, change, fields, exit_code in edits:
    path = edited_lock(name.replace(" ", "_") + ".lock", change)
    result = medlab("--check", path)
    lines = result.stdout.splitlines()
    problems = []
    if result.returncode != exit_code:
        problems.append(f"exit code {result.returncode}, expected {exit_code}")
    difference_lines = [line for line in lines if line.split(":")[0] in fields]
    for field in fields:
        mine = [line for line in lines if line.startswith(field + ": lock ")]
        if len(mine) != 1:
            problems.append(f"{len(mine)} lines for {field}, expected 1: {lines}")
    if len(lines) != len(fields) + (exit_code == 0):
        problems.append(f"{len(lines)} lines, expected one per difference: {lines}")
    if exit_code == 1:
        errors = [line for line in result.stderr.splitlines() if line.startswith("medlab: error:")]
        if len(errors) != 1 or path not in errors[0]:
            problems.append(f"error line does not name the lock: {result.stderr!r}")
    elif "informational" not in lines[-1] or "matches the lock" not in lines[-1]:
        problems.append(f"no note that only informational differences remain: {lines[-1]!r}")
    if name == "isa" and not problems:
        line = difference_lines[0]
        if "can change results" not in line or (other_isa == "scalar" and "--isa scalar" not in line):
            problems.append(f"isa line gives no way to run the locked kernels: {line!r}")
    case(f"check: {name}", problems)
    if not problems:
        for line in lines:
            print(f"    {line}")

# A missing lock and malformed ones: one error line naming the file (and the field), exit code 1.
missing_field = edited_lock("no_isa.lock", lambda lock: lock["kernels"].pop("isa"))
wrong_type = edited_lock("threads_text.lock", set_field("threads", None, "many"))
not_json = os.path.join(work, "truncated.lock")
with open(not_json, "wb") as f:
    f.write(first_bytes[: len(first_bytes) // 2])
bad_cases = [
    ("missing lock", os.path.join(work, "nowhere.lock"), "nowhere.lock"),
    ("missing field", missing_field, "kernels.isa"),
    ("wrong type", wrong_type, "threads"),
    ("truncated JSON", not_json, "truncated.lock"),
]
for name, path, expected in bad_cases:
    result = medlab("--check", path)
    errors = [line for line in result.stderr.splitlines() if line.startswith("medlab: error:")]
    problems = []
    if result.returncode != 1:
        problems.append(f"exit code {result.returncode}, expected 1")
    if len(errors) != 1 or expected not in errors[0] or os.path.basename(path) not in errors[0]:
        problems.append(f"error does not name {expected!r}: {result.stderr.strip()!r}")
    case(f"bad lock: {name}", problems)
    if not problems:
        print(f"    {errors[0]}")

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
