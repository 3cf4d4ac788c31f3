#!/usr/bin/env python3
"""medlab run --series: a generated CT series (files named in shuffled order) reaches the model as the
notebook's evenly sampled slices, ordered along the slice normal, each labelled "SLICE n" in the prompt.
Prints one line per check and then "N passed, M failed".

    series_test.py --medlab BIN --workdir DIR
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

parser = argparse.ArgumentParser()
parser.add_argument("--medlab", required=True)
parser.add_argument("--workdir", required=True)
args = parser.parse_args()

work = os.path.abspath(args.workdir)
shutil.rmtree(work, ignore_errors=True)
series_dir = os.path.join(work, "series")
os.makedirs(series_dir)

count, sampled = 40, 6
series_uid = generate_uid()
names = [f"img{n:03d}.dcm" for n in random.Random(4).sample(range(count), count)]  # names say nothing of order
for z in range(count):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(names[z], {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.SeriesInstanceUID = series_uid
    ds.InstanceNumber = count - z  # reversed, so that sorting by it would be wrong
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [0, 0, 2.5 * z]
    ds.Rows = ds.Columns = 32
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.PixelData = (np.full((32, 32), 1024 + 10 * z, dtype=np.int16)).tobytes()
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.save_as(os.path.join(series_dir, names[z]), write_like_original=False)

model = os.path.join(work, "tiny")
subprocess.run([args.medlab, "make-test-model", "--preset", "tiny", "--seed", "2", "--out", model], check=True,
               stdout=subprocess.DEVNULL)
result = subprocess.run([args.medlab, "run", "--model", model, "--prompt", "Is there free fluid?", "--series", series_dir,
                         "--slices", str(sampled), "-n", "4", "--json"], capture_output=True, text=True)

checks = []
if result.returncode != 0:
    checks.append(("run succeeds", False, result.stderr.strip()))
else:
    out = json.loads(result.stdout)
    # The notebook's rule: index round(i / N * (count - 1)) for i = 1..N, Python's round.
    expected = [names[round(i / sampled * (count - 1))] for i in range(1, sampled + 1)]
    got = [image["file"] for image in out["images"]]
    checks.append(("slices sampled evenly along the normal", got == expected, f"{got} vs {expected}"))
    checks.append(("ct-rgb window by default", all("ct-rgb" in image["source"] for image in out["images"]),
                   out["images"][0]["source"]))
    decode = subprocess.run([args.medlab, "tokenize", "--model", model, "--decode",
                             ",".join(map(str, out["prompt_tokens"]))], capture_output=True, text=True)
    labels = [f"<end_of_image>\n\nSLICE {n}" for n in range(1, sampled + 1)]
    checks.append(("each slice labelled SLICE n", all(label in decode.stdout for label in labels), decode.stdout[-200:]))

passed = sum(ok for _, ok, _ in checks)
for name, ok, detail in checks:
    print(f"{'PASS' if ok else 'FAIL'} {name}" + ("" if ok else f": {detail}"))
print(f"{passed} passed, {len(checks) - passed} failed")
sys.exit(0 if passed == len(checks) else 1)
