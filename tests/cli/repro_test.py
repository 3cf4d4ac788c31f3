#!/usr/bin/env python3
"""medlab repro end to end on the generated synthetic test set with the tiny test model: all five steps, a
second run's metric file byte-identical, --resume after a kill -9, a baseline that passes and one that fails,
a weights lock that does not match, an environment lock that differs, and bad experiment files.

    repro_test.py --medlab BIN --workdir DIR
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--medlab", required=True)
parser.add_argument("--workdir", required=True)
args = parser.parse_args()
args.medlab = os.path.abspath(args.medlab)

work = os.path.abspath(args.workdir)
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
failures = []


def check(condition, what):
    print(("ok    " if condition else "FAIL  ") + what, flush=True)
    if not condition:
        failures.append(what)


def medlab(*command):
    return subprocess.run([args.medlab] + list(command), capture_output=True, text=True, cwd=work, timeout=600)


def prepare(*command):
    result = medlab(*command)
    if result.returncode != 0:
        sys.exit("%s failed: %s" % (" ".join(command), result.stderr))


prepare("make-test-set", "--out", "testset", "--per-category", "2", "--size", "256")
prepare("make-test-model", "--preset", "tiny", "--seed", "3", "--out", "tiny")
prepare("verify", "--model", "tiny", "--write-lock", "weights.lock")
prepare("env", "--write-lock", "env.lock")


def experiment(name, **fields):
    body = {"name": name, "model": "tiny", "test_set": "testset", "weights_lock": "weights.lock", "env_lock": "env.lock",
            "generation": {"seed": 7, "max_new_tokens": 16, "temperature": 0.7},
            "eval": {"by": "category", "bootstrap": 200}, "reports": "reports-" + name}
    body.update(fields)
    with open(os.path.join(work, name + ".json"), "w") as f:
        json.dump(body, f)
    return name + ".json"


def read(path, mode="r"):
    with open(os.path.join(work, path), mode) as f:
        return f.read()


first = medlab("repro", experiment("first"))
steps = [line for line in first.stdout.splitlines() if line.startswith("[")]
check(first.returncode == 0, "repro runs end to end (exit %d: %s)" % (first.returncode, first.stderr.strip()[-300:]))
check([s[:5] for s in steps] == ["[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"], "five steps, in order")
check("matches the lock" in first.stdout and "PASS against weights.lock" in first.stdout, "environment and weights checked")
check(any(line.startswith("BLEU-4: ") and "95% CI" in line for line in first.stdout.splitlines()),
      "BLEU-4 printed with its interval")
for name in ("metrics.json", "report.html", "manifest.json", "predictions.jsonl"):
    check(os.path.exists(os.path.join(work, "reports-first", name)), "reports/ holds " + name)
rows = [json.loads(line) for line in read("reports-first/predictions.jsonl").splitlines()]
check(len(rows) == 10 and all(r["error"] is None and r["seed"] == 7 for r in rows), "every film answered, with the seed")
manifest = json.loads(read("reports-first/manifest.json"))
check(len(manifest["test_set"]["annotations_sha256"]) == 64 and manifest["weights"]["model_sha256"] == rows[0]["model_sha256"]
      and manifest["run"]["seed"] == 7 and manifest["environment"]["lock"].endswith("env.lock"),
      "the manifest records test set, weights, run and environment")
check("Research software" in read("reports-first/report.html"), "the HTML report says what it is")

second = medlab("repro", experiment("second"))
check(second.returncode == 0 and read("reports-first/metrics.json", "rb") == read("reports-second/metrics.json", "rb"),
      "a second run gives a byte-identical metrics.json")

again = medlab("repro", "first.json")
check(again.returncode == 1 and "--resume" in again.stderr, "an experiment with answers already: refused without --resume")
resumed = medlab("repro", "first.json", "--resume")
check(resumed.returncode == 0 and "0 answered now" in resumed.stdout
      and read("reports-first/metrics.json", "rb") == read("reports-second/metrics.json", "rb"),
      "--resume on a finished experiment answers nothing and scores the same")

# kill -9 part-way, then --resume.
name = experiment("killed")
process = subprocess.Popen([args.medlab, "repro", name], cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
deadline = time.monotonic() + 60
while time.monotonic() < deadline and process.poll() is None:
    path = os.path.join(work, "reports-killed", "predictions.jsonl")
    if os.path.exists(path) and read(path).count("\n") >= 3:
        process.send_signal(signal.SIGKILL)
        break
    time.sleep(0.02)
process.wait()
before = read("reports-killed/predictions.jsonl").count("\n")
resumed = medlab("repro", name, "--resume")
check(0 < before < 10, "the experiment was killed part-way (%d of 10 answers written)" % before)
check(resumed.returncode == 0 and read("reports-killed/metrics.json", "rb") == read("reports-first/metrics.json", "rb"),
      "after kill -9 and --resume the metrics are byte-identical")

# Baselines.
prepare("eval", "--predictions", "reports-first/predictions.jsonl", "--references", "testset/annotations.jsonl",
        "--by", "category", "--bootstrap", "200", "--write-baseline", "baseline.json")
passing = medlab("repro", experiment("with-baseline", baseline="baseline.json"))
check(passing.returncode == 0 and "BLEU-4: " in passing.stdout and " PASS (baseline" in passing.stdout,
      "inside the baseline bands: PASS lines, exit 0")
baseline = json.loads(read("baseline.json"))
baseline["metrics"]["Finding micro F1"]["value"] += 50
with open(os.path.join(work, "moved.json"), "w") as f:
    json.dump(baseline, f)
failing = medlab("repro", experiment("with-moved-baseline", baseline="moved.json"))
check(failing.returncode == 3 and "Finding micro F1" in failing.stdout and " FAIL (baseline" in failing.stdout,
      "a metric outside its band: FAIL line, exit 3")

# Locks that do not match.
lock = json.loads(read("weights.lock"))
lock["files"][0]["sha256"] = "0" * 64
with open(os.path.join(work, "other.lock"), "w") as f:
    json.dump(lock, f)
wrong = medlab("repro", experiment("wrong-weights", weights_lock="other.lock"))
check(wrong.returncode == 1 and "do not match" in wrong.stderr
      and not os.path.exists(os.path.join(work, "reports-wrong-weights", "predictions.jsonl")),
      "weights that do not match the lock: stops before answering, exit 1")
env = json.loads(read("env.lock"))
env["kernels"]["isa"] = "scalar" if env["kernels"]["isa"] != "scalar" else "avx2"
with open(os.path.join(work, "other-env.lock"), "w") as f:
    json.dump(env, f)
other_env = medlab("repro", experiment("other-env", env_lock="other-env.lock"))
check(other_env.returncode == 0 and "DIFFERS" in other_env.stdout and "kernels.isa" in other_env.stdout,
      "an environment that differs is reported line by line and the experiment goes on")

# Bad experiment files.
for label, body, expected in [("unknown field", {"model": "tiny", "test_set": "testset", "modle": 1}, "unknown field"),
                              ("no test set", {"model": "tiny"}, "test_set"),
                              ("test set without annotations", {"model": "tiny", "test_set": "tiny"}, "annotations.jsonl"),
                              ("wrong type", {"model": "tiny", "test_set": "testset", "parallel": "four"}, "parallel")]:
    with open(os.path.join(work, "bad.json"), "w") as f:
        json.dump(body, f)
    result = medlab("repro", "bad.json")
    check(result.returncode == 1 and expected in result.stderr, "bad experiment (%s): exit 1, names %s" % (label, expected))
with open(os.path.join(work, "bad.json"), "w") as f:
    f.write("{not json")
result = medlab("repro", "bad.json")
check(result.returncode == 1 and "not a JSON object" in result.stderr, "an experiment that is not JSON: exit 1")

print("%d failed" % len(failures))
sys.exit(1 if failures else 0)
