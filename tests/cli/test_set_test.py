#!/usr/bin/env python3
"""medlab make-test-set: the same flags write the same bytes; medlab dicom info and render read every film;
annotations.jsonl has 5 categories x N valid lines; medlab batch answers every (film, prompt) pair with the
tiny test model and medlab eval scores the answers against it; and, with pydicom installed, pydicom decodes the
same pixels medlab does.
Prints one line per check and then "N passed, M failed".

    test_set_test.py --medlab BIN --workdir DIR
"""
import argparse
import filecmp
import hashlib
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
passed = failed = 0


def check(ok, what):
    global passed, failed
    print(("PASS " if ok else "FAIL ") + what, flush=True)
    if ok:
        passed += 1
    else:
        failed += 1


def medlab(*argv, check_exit=True):
    result = subprocess.run([args.medlab] + list(argv), capture_output=True, text=True, timeout=600)
    if check_exit and result.returncode != 0:
        sys.exit("medlab %s failed (%d):\n%s" % (" ".join(argv), result.returncode, result.stderr))
    return result


PER_CATEGORY = 2
CATEGORIES = {"cardiac silhouette overlap", "rib fracture", "pneumothorax vs skin fold", "metal implants", "paediatric"}
first, second = os.path.join(work, "set-a"), os.path.join(work, "set-b")
made = medlab("make-test-set", "--out", first, "--per-category", str(PER_CATEGORY), "--size", "256")
medlab("make-test-set", "--out", second, "--per-category", str(PER_CATEGORY), "--size", "256")
check("SYNTHETIC" in made.stdout and "not anatomy" in made.stdout, "says the films are synthetic, not anatomy")
files_a = sorted(os.listdir(os.path.join(first, "images")))
check(len(files_a) == 5 * PER_CATEGORY, "one DICOM file per case: %d" % len(files_a))
same = all(filecmp.cmp(os.path.join(first, "images", f), os.path.join(second, "images", f), shallow=False)
           for f in files_a) and filecmp.cmp(os.path.join(first, "annotations.jsonl"),
                                             os.path.join(second, "annotations.jsonl"), shallow=False)
check(same and sorted(os.listdir(os.path.join(second, "images"))) == files_a, "written twice: identical bytes")
other = os.path.join(work, "seed-2")
medlab("make-test-set", "--out", other, "--per-category", "1", "--size", "256", "--seed", "2")
check(not filecmp.cmp(os.path.join(first, "images", "cardiac-1.dcm"), os.path.join(other, "images", "cardiac-1.dcm"),
                      shallow=False), "another seed, other files")
again = medlab("make-test-set", "--out", first, check_exit=False)
check(again.returncode == 1 and "not empty" in again.stderr, "refuses a folder that is not empty without --force")

with open(os.path.join(first, "annotations.jsonl")) as f:
    lines = [json.loads(line) for line in f]
check(len(lines) == 5 * PER_CATEGORY, "annotations.jsonl: one line per film")
check(all(set(j) == {"id", "file", "prompt", "references", "category"} for j in lines), "fields id, file, prompt, references, category")
check(all(j["category"] in CATEGORIES for j in lines) and {j["category"] for j in lines} == CATEGORIES,
      "the five categories")
check(all(sum(j["category"] == c for j in lines) == PER_CATEGORY for c in CATEGORIES), "%d per category" % PER_CATEGORY)
check(len({j["id"] for j in lines}) == len(lines), "ids are unique")
check(all(os.path.isfile(os.path.join(first, j["file"])) and not os.path.isabs(j["file"]) for j in lines),
      "files are relative and exist")
check(all(2 <= len(j["references"]) <= 3 and all(isinstance(r, str) and r.endswith(".") for r in j["references"])
          for j in lines), "2 or 3 reference reports per film")

# medlab dicom info: the folder (each film its own series) and every file.
folder = json.loads(medlab("dicom", "info", os.path.join(first, "images"), "--json").stdout)
check(len(folder["series"]) == len(lines) and not folder["skipped"], "dicom info reads every file of the folder")
check(all(s["modality"] == "DX" and s["rows"] == 256 and s["columns"] == 256 and s["photometric"] == "MONOCHROME2"
          for s in folder["series"]), "DX, 256 x 256, MONOCHROME2")
infos = {}
for j in lines:
    infos[j["id"]] = json.loads(medlab("dicom", "info", os.path.join(first, j["file"]), "--json").stdout)
windows_ok = all(len(i["transforms"].get("windows", [])) == 1 and i["transforms"]["windows"][0]["center"] == 1500
                 and i["transforms"]["windows"][0]["width"] == 2600 for i in infos.values())
check(windows_ok, "one window, C1500 W2600, in every file")
check(all(i["bits_allocated"] == 16 and i["bits_stored"] == 12 and not i["signed"] for i in infos.values()),
      "16 bits allocated, 12 stored, unsigned")
check(len({i["pixel_sha256"] for i in infos.values()}) == len(lines), "every film has its own pixels")

png = os.path.join(work, "film.png")
medlab("dicom", "render", os.path.join(first, lines[0]["file"]), "--out", png)
with open(png, "rb") as f:
    head = f.read(24)
check(head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24]) == (256, 256), "dicom render writes a 256 x 256 PNG")

# medlab batch reads annotations.jsonl as a manifest (file, id, prompt) and answers every pair.
model = os.path.join(work, "tiny")
medlab("make-test-model", "--preset", "tiny", "--seed", "1", "--out", model)
results = os.path.join(work, "results.jsonl")
medlab("batch", "--model", model, "--manifest", os.path.join(first, "annotations.jsonl"), "--out", results, "-n", "4")
with open(results) as f:
    rows = [json.loads(line) for line in f if line.strip()]
check(len(rows) == len(lines), "batch: one row per film (%d)" % len(rows))
check(all(r["error"] is None and r["answer"] is not None for r in rows), "batch: no error rows")
check(sorted(r["image_id"] for r in rows) == sorted(j["id"] for j in lines), "batch: the manifest's ids")
scored = medlab("eval", "--predictions", results, "--references", os.path.join(first, "annotations.jsonl"),
                "--by", "category", check_exit=False)
check(scored.returncode == 0, "medlab eval takes annotations.jsonl as its references")

# pydicom, when installed, reads the files and decodes the pixels medlab hashes.
try:
    import pydicom
except ImportError:
    pydicom = None
    print("SKIP pydicom checks: pydicom is not installed for %s" % sys.executable)
if pydicom:
    same_pixels = True
    for j in lines:
        ds = pydicom.dcmread(os.path.join(first, j["file"]))
        pixels = ds.pixel_array
        canonical = struct.pack("<4I", ds.Rows, ds.Columns, 1, 1) + pixels.astype("<u2").tobytes()
        same_pixels &= hashlib.sha256(canonical).hexdigest() == infos[j["id"]]["pixel_sha256"]
        same_pixels &= ds.Modality == "DX" and str(ds.PatientName) == "SYNTHETIC^TEST" and ds.PatientID.startswith("SYNTH-")
        same_pixels &= int(pixels.max()) <= 4095
    check(same_pixels, "pydicom reads every file, and its pixel arrays are the values medlab decodes")

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
