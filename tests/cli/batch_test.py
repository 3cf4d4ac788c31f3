#!/usr/bin/env python3
"""medlab batch and merge end to end on the tiny test model, with sampling on so that any difference shows:

- crash safety: a run killed with SIGKILL at random points and resumed each time ends with every pair
  exactly once, equal to an uninterrupted run; a torn last row is dropped and redone;
- shards: 0/3, 1/3 and 2/3 merged equal the unsharded run, gaps and duplicates reported;
- determinism: the same rows for 1 and 2 threads, 1, 2 and 4 pairs at once, and repeated runs; the same tokens
  from medlab run and medlab serve for an image pair and a text pair;
- bad input: unreadable files and bad manifest lines become error rows while the run goes on; a results file
  of another run, an existing --out without --resume, a bad --shard: clear errors.

    batch_test.py --medlab BIN --workdir DIR
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
from serve_support import JPEG_20x14, data_uri, png_bytes, start_server  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--medlab", required=True)
parser.add_argument("--workdir", required=True)
args = parser.parse_args()

work = os.path.abspath(args.workdir)
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
model = os.path.join(work, "tiny")
subprocess.run([args.medlab, "make-test-model", "--preset", "tiny", "--seed", "7", "--out", model],
               check=True, stdout=subprocess.DEVNULL)

failures = []


def check(condition, what):
    print(("ok    " if condition else "FAIL  ") + what, flush=True)
    if not condition:
        failures.append(what)


# Four images, two more DICOM ones (PNG gradients, a JPEG, DICOM when pydicom's test files are here), one broken file, a text
# file and a hidden file that are not images; three questions each.
images = os.path.join(work, "images")
os.makedirs(os.path.join(images, "follow-up"))
os.makedirs(os.path.join(images, ".cache"))
for i, (w, h) in enumerate([(40, 30), (64, 64), (23, 57)]):
    with open(os.path.join(images, "film%d.png" % i), "wb") as f:
        f.write(png_bytes(w, h, lambda x, y, i=i: ((x * 7 + i * 40) % 256, (y * 5) % 256, (x * y + i) % 256)))
with open(os.path.join(images, "follow-up", "film.jpg"), "wb") as f:
    f.write(JPEG_20x14)
pydicom_files = "/usr/lib/python3/dist-packages/pydicom/data/test_files"
for name in ("CT_small.dcm", "MR_small.dcm"):
    if os.path.exists(os.path.join(pydicom_files, name)):
        shutil.copy(os.path.join(pydicom_files, name), os.path.join(images, "follow-up", name))
with open(os.path.join(images, "broken.png"), "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\nthis is not a PNG")
with open(os.path.join(images, "notes.txt"), "w") as f:
    f.write("not an image\n")
with open(os.path.join(images, ".cache", "x.png"), "wb") as f:
    f.write(b"hidden")
questions = os.path.join(work, "questions.txt")
with open(questions, "w") as f:
    f.write("# asked of every image\nDescribe this image.\n\nIs there a fracture?\nAny pleural effusion?\n")

SAMPLING = ["--temperature", "0.8", "--top-p", "0.95", "--seed", "11", "-n", "12"]


def batch(out, *extra, check_exit=True):
    command = [args.medlab, "batch", "--model", model, "--images", images, "--questions", questions,
               "--out", out] + SAMPLING + list(extra)
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if check_exit and result.returncode != 0:
        sys.exit("batch failed (%d): %s\n%s" % (result.returncode, " ".join(command), result.stderr))
    return result


def rows_of(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def answers(rows):
    """What must not change between runs: per pair id, its index, answer, tokens and error."""
    return {r["id"]: (r["index"], r["answer"], r.get("tokens"), r["error"]) for r in rows}


# The uninterrupted run everything else is compared with.
started = time.monotonic()
reference_out = os.path.join(work, "reference.jsonl")
result = batch(reference_out, "--parallel", "2", "--threads", "2")
reference_seconds = time.monotonic() - started
reference = rows_of(reference_out)
expected = answers(reference)
n_images = 5 + sum(os.path.exists(os.path.join(pydicom_files, n)) for n in ("CT_small.dcm", "MR_small.dcm"))
check(len(reference) == 3 * n_images, "one row per (image, question): %d rows for %d files x 3" % (len(reference), n_images))
check(len(expected) == len(reference), "ids are unique")
check(sorted(r["index"] for r in reference) == list(range(len(reference))), "indices 0..n-1")
broken = [r for r in reference if r["image_id"] == "broken.png"]
check(len(broken) == 3 and all(r["answer"] is None and "broken.png" in r["error"] for r in broken),
      "an unreadable image is an error row naming the file, and the run goes on")
good = [r for r in reference if r["error"] is None]
check(all(r["n_tokens"] > 0 and len(r["pixel_sha256"]) == 64 and r["seed"] == 11 for r in good),
      "answered rows carry tokens, pixel hash and seed")
check(all(r["run"]["model_sha256"] == r["model_sha256"] and r["run"]["sampler"]["temperature"] == 0.8
          and r["run"]["isa"] and r["run"]["engine"] for r in reference), "every row carries the run manifest")
check(not any("notes.txt" in r["file"] or ".cache" in r["file"] for r in reference), "non-images and hidden files skipped")
check("1 files" in result.stderr and "not images by name" in result.stderr, "the skipped file is reported")
print("reference run: %d rows in %.1f s" % (len(reference), reference_seconds))

# Crash safety: SIGKILL at random points, --resume each time. The first kill lands while the model loads; the
# others once a randomly chosen number of further rows is on disk, so each one interrupts work in flight.
crash_out = os.path.join(work, "crash.jsonl")
rng = random.Random(20261123)


def rows_on_disk():
    if not os.path.exists(crash_out):
        return 0
    with open(crash_out) as f:
        return f.read().count("\n")


kills, rows_between = 0, []
for attempt in range(6):
    done = rows_on_disk()
    if done >= len(reference) - 1:
        break
    target = done + rng.randint(1, max(1, (len(reference) - done) // 3))
    command = [args.medlab, "batch", "--model", model, "--images", images, "--questions", questions,
               "--out", crash_out, "--resume", "--parallel", "2"] + SAMPLING
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    if attempt == 0:
        time.sleep(0.1)
    else:
        while process.poll() is None and rows_on_disk() < target and time.monotonic() < deadline:
            time.sleep(0.005)
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
        kills += 1
    process.wait()
    rows_between.append(rows_on_disk())
# A row torn in the middle of its write, as a crash inside write() would leave it.
with open(crash_out, "a") as f:
    f.write('{"id": "film0.png#1", "answer": "half a r')
final = batch(crash_out, "--resume", "--parallel", "2")
crashed = rows_of(crash_out)
ids = [r["id"] for r in crashed]
print("killed %d times; rows after each attempt: %s" % (kills, rows_between))
check(kills >= 3, "the run was killed mid-way at least 3 times (%d)" % kills)
check(len(ids) == len(set(ids)) == len(reference), "after kills and resumes every pair is there exactly once")
check(answers(crashed) == expected, "the resumed run's answers equal the uninterrupted run's")
check("cut off" in final.stderr, "the torn last row is reported and redone")
again = batch(crash_out, "--resume")
check(len(rows_of(crash_out)) == len(reference) and "0 to answer" in again.stderr, "resuming a finished run adds nothing")

# Shards and merge.
shard_outs = []
for i in range(3):
    shard_outs.append(os.path.join(work, "shard%d.jsonl" % i))
    batch(shard_outs[-1], "--shard", "%d/3" % i, "--parallel", "2")
check(all(r["index"] % 3 == i for i, out in enumerate(shard_outs) for r in rows_of(out)), "shard I/3 takes index %% 3 == I")
merged_out = os.path.join(work, "merged.jsonl")
merge = subprocess.run([args.medlab, "merge", "--out", merged_out] + shard_outs, capture_output=True, text=True)
merged = rows_of(merged_out) if merge.returncode == 0 else []
check(merge.returncode == 0 and answers(merged) == expected, "3 shards merged equal one unsharded run")
check([r["index"] for r in merged] == list(range(len(reference))), "the merged file is in pair order")
gap = subprocess.run([args.medlab, "merge", "--out", os.path.join(work, "gap.jsonl")] + shard_outs[:2],
                     capture_output=True, text=True)
check(gap.returncode == 1 and "missing" in gap.stderr and not os.path.exists(os.path.join(work, "gap.jsonl")),
      "a missing shard: pairs listed, exit 1, nothing written")
twice = subprocess.run([args.medlab, "merge", "--out", os.path.join(work, "twice.jsonl")] + shard_outs + [shard_outs[0]],
                       capture_output=True, text=True)
check(twice.returncode == 0 and "duplicate" in twice.stderr and answers(rows_of(os.path.join(work, "twice.jsonl"))) == expected,
      "a shard given twice: duplicates reported and kept once")

# Determinism across threads, pairs at once, and repeated runs.
for name, extra in [("threads1", ["--threads", "1", "--parallel", "1"]), ("parallel4", ["--threads", "2", "--parallel", "4"]),
                    ("repeat", ["--parallel", "2", "--threads", "2"])]:
    out = os.path.join(work, name + ".jsonl")
    batch(out, *extra)
    check(answers(rows_of(out)) == expected, "same rows with %s" % " ".join(extra))

# A manifest: a text-only question, an image with its own window, and bad lines.
manifest = os.path.join(work, "manifest.jsonl")
dicom_rows = [r for r in reference if r["file"].endswith(".dcm")]
with open(manifest, "w") as f:
    f.write(json.dumps({"id": "text-1", "question": "What does a pneumothorax look like on a chest film?"}) + "\n")
    f.write(json.dumps({"id": "png", "file": "images/film1.png", "question": "Describe this image."}) + "\n")
    f.write("this line is not JSON\n")
    f.write(json.dumps({"id": "no-file-type", "file": 7}) + "\n")
    if dicom_rows:
        f.write(json.dumps({"id": "ct-lung", "file": os.path.relpath(dicom_rows[0]["file"], work), "window": "lung",
                            "question": "Any nodules?"}) + "\n")
manifest_out = os.path.join(work, "manifest-out.jsonl")
result = subprocess.run([args.medlab, "batch", "--model", model, "--manifest", manifest, "--out", manifest_out] + SAMPLING,
                        capture_output=True, text=True)
by_id = {r["image_id"]: r for r in rows_of(manifest_out)} if result.returncode == 0 else {}
check(result.returncode == 0 and by_id.get("text-1", {}).get("n_tokens", 0) > 0 and by_id["text-1"]["file"] is None,
      "a manifest row without a file is a text-only question")
check("manifest.jsonl:3" in by_id.get("line-3", {}).get("error", "") and "manifest.jsonl:4" in by_id.get("line-4", {}).get("error", ""),
      "bad manifest lines are error rows naming file and line; the run goes on")
check(by_id.get("png", {}).get("tokens") == expected.get("film1.png#1", (0, 0, None))[2],
      "the same pair from a manifest and from a folder gives the same tokens")
if dicom_rows:
    check("lung" in by_id.get("ct-lung", {}).get("image", {}).get("source", ""), "a manifest row's window is applied")

# medlab run and medlab serve give the same tokens as batch rows, for an image and for a text question.
run_flags = ["--temperature", "0.8", "--top-p", "0.95", "--seed", "11", "-n", "12"]
image_row = next(r for r in reference if r["error"] is None and r["file"].endswith("film2.png"))
run_image = json.loads(subprocess.run([args.medlab, "run", "--model", model, "--prompt", image_row["question"],
                                       "--image", image_row["file"], "--json"] + run_flags,
                                      capture_output=True, text=True, check=True).stdout)
check(run_image["tokens"] == image_row["tokens"], "medlab run gives the batch row's tokens (image)")
check(run_image["run"] == image_row["run"] and run_image["model_sha256"] == image_row["model_sha256"],
      "medlab run --json carries the same run manifest")
text_row = by_id.get("text-1", {})
run_text = json.loads(subprocess.run([args.medlab, "run", "--model", model, "--prompt", text_row.get("question", "?"),
                                      "--json"] + run_flags, capture_output=True, text=True, check=True).stdout)
check(run_text["tokens"] == text_row.get("tokens"), "medlab run gives the batch row's tokens (text)")

with open(os.path.join(work, "serve.log"), "w") as log:
    server, host, port = start_server([args.medlab, "serve", "--model", model, "--port", "0", "--parallel", "2"], log)
    try:
        def predict(body):
            request = urllib.request.Request("http://%s:%d/api/predict" % (host, port), data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.loads(response.read())
        settings = {"temperature": 0.8, "top_p": 0.95, "seed": 11, "max_new_tokens": 12}
        with open(image_row["file"], "rb") as f:
            served = predict(dict(settings, question=image_row["question"], image=data_uri("image/png", f.read())))
        check(served["tokens"] == image_row["tokens"], "medlab serve gives the batch row's tokens (image)")
        check(served["run"] == image_row["run"] and served["image"]["pixel_sha256"] == image_row["pixel_sha256"],
              "serve answers carry the same run manifest and pixel hash")
        served = predict(dict(settings, question=text_row.get("question", "?")))
        check(served["tokens"] == text_row.get("tokens"), "medlab serve gives the batch row's tokens (text)")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)

# Bad input.
result = batch(reference_out, check_exit=False)
check(result.returncode == 1 and "--resume" in result.stderr, "an existing --out without --resume: refused, says --resume")
result = batch(reference_out, "--resume", "--repetition-penalty", "1.1", check_exit=False)
check(result.returncode == 1 and "sampler" in result.stderr, "resuming with other sampler settings: refused, names the field")
result = batch(shard_outs[0], "--resume", "--shard", "1/3", check_exit=False)
check(result.returncode == 1 and "not part of this run" in result.stderr, "resuming another shard's file: refused")
result = batch(os.path.join(work, "x.jsonl"), "--shard", "3/3", check_exit=False)
check(result.returncode == 1 and "--shard" in result.stderr, "a bad --shard: refused")
corrupt = os.path.join(work, "corrupt.jsonl")
with open(corrupt, "w") as f:
    f.write("not a row\n" + json.dumps(reference[0]) + "\n")
result = batch(corrupt, "--resume", check_exit=False)
check(result.returncode == 1 and "corrupt.jsonl:1" in result.stderr, "a results file with a bad line: refused, names the line")
result = subprocess.run([args.medlab, "batch", "--model", model, "--images", os.path.join(work, "nowhere"), "-q", "Hi",
                         "--out", os.path.join(work, "y.jsonl")], capture_output=True, text=True)
check(result.returncode == 1 and "nowhere" in result.stderr, "a missing --images folder: refused, names it")
crash_lines = [l for l in result.stderr.splitlines() if "internal error" in l]
check(not crash_lines, "no internal errors")

print("%d failed" % len(failures))
sys.exit(1 if failures else 0)
