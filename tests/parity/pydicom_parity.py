#!/usr/bin/env python3
"""medlab dicom render against pydicom, on pydicom's test corpus plus generated files and bad inputs.

Reference convention (what `medlab dicom render --window file` must match within 1 grey level):
  greyscale: pydicom apply_modality_lut, then apply_voi_lut(index 0, prefer the VOI LUT Sequence);
    a window's output range [y_min, y_max] (pydicom's, from Bits Stored and the rescale) is scaled
    linearly to 0..255; a VOI LUT's 0..2^bits-1 to 0..255; with no VOI, the modality output's own
    min..max to 0..255; rounded half up; then MONOCHROME1 inverted (255 - v).
  colour: RGB (and YBR_RCT/YBR_ICT, which the JPEG 2000 decoder has turned into RGB) 0..2^BitsStored-1
    scaled to 0..255; YBR_FULL/YBR_FULL_422 through pydicom's convert_color_space; PALETTE COLOR through
    apply_color_lut, 0..2^bits-1 scaled to 0..255.
Frame: the first, unless the case names one. Geometry must match exactly.
Files pydicom cannot decode, and the damaged files listed in DAMAGED, must make medlab fail cleanly
(exit 1, "medlab: error: <file>: ...").
"""
import argparse
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pydicom
from PIL import Image
from pydicom.pixel_data_handlers.util import (apply_color_lut, apply_modality_lut, apply_voi_lut,
                                              convert_color_space)

warnings.simplefilter("ignore")
HERE = os.path.dirname(os.path.abspath(__file__))


def scale(v, lo, hi):
    v = (np.asarray(v, dtype=np.float64) - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(v, np.float64)
    return np.floor(np.clip(v, 0, 255) + 0.5).astype(np.uint8)


def reference(ds, frame):
    """pydicom's 8-bit rendering of `frame` by the convention above; raises if pydicom cannot decode."""
    arr = ds.pixel_array
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames > 1:
        arr = arr[frame]
    pi = ds.PhotometricInterpretation
    if pi in ("MONOCHROME1", "MONOCHROME2"):
        mod = apply_modality_lut(arr, ds)
        if ds.get("VOILUTSequence"):
            bits = ds.VOILUTSequence[0].LUTDescriptor[2]
            out = scale(apply_voi_lut(mod, ds, 0), 0, 2**bits - 1)
        elif "WindowCenter" in ds and "WindowWidth" in ds:
            if ds.get("ModalityLUTSequence"):
                y_min, y_max = 0, 2 ** ds.ModalityLUTSequence[0].LUTDescriptor[2] - 1
            elif ds.PixelRepresentation == 0:
                y_min, y_max = 0, 2**ds.BitsStored - 1
            else:
                y_min, y_max = -(2 ** (ds.BitsStored - 1)), 2 ** (ds.BitsStored - 1) - 1
            if "RescaleSlope" in ds and "RescaleIntercept" in ds:
                y_min = y_min * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
                y_max = y_max * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
            out = scale(apply_voi_lut(mod, ds, 0), y_min, y_max)
        else:
            out = scale(mod, float(np.min(mod)), float(np.max(mod)))
        return 255 - out if pi == "MONOCHROME1" else out
    if pi == "PALETTE COLOR":
        bits = ds.RedPaletteColorLookupTableDescriptor[2]
        return scale(apply_color_lut(arr, ds), 0, 2**bits - 1)
    if pi in ("YBR_FULL", "YBR_FULL_422"):
        return convert_color_space(arr, pi, "RGB").astype(np.uint8)
    return scale(arr, 0, 2**ds.BitsStored - 1)


def run_medlab(medlab, path, out_png, extra=()):
    return subprocess.run([medlab, "dicom", "render", path, "--out", out_png, *extra], capture_output=True, text=True)


# Non-conformant files pydicom returns pixels for anyway; medlab must refuse them with a clear error.
DAMAGED = {
    # The fragment's SIZ marker segment is overwritten by a sequence delimiter (FFFE,E0DD): OpenJPEG and
    # GDCM refuse the codestream; only Pillow returns (garbage) pixels.
    "JPEG2000-embedded-sequence-delimiter.dcm",
    # The meta header says JPEG Baseline (explicit VR) but the dataset is implicit VR: DCMTK cannot parse it.
    "SC_rgb_jpeg.dcm",
}


def check_file(medlab, path, work, frame=0):
    """Returns (status, detail): match, mismatch, refused (both refuse), or medlab-only (pydicom refuses)."""
    name = os.path.basename(path)
    out_png = os.path.join(work, name + f".f{frame}.png")
    try:
        ds = pydicom.dcmread(path)
        ref = reference(ds, frame)
        pydicom_error = None
    except Exception as e:  # pydicom refuses: medlab must fail cleanly, or may decode what pydicom cannot
        ref, pydicom_error = None, f"{type(e).__name__}: {str(e)[:90]}"
    result = run_medlab(medlab, path, out_png, ["--frame", str(frame + 1)])
    if result.returncode != 0:
        clean = result.returncode == 1 and result.stderr.startswith(f"medlab: error: {name}:")
        if not clean:
            return "mismatch", f"medlab did not fail cleanly (exit {result.returncode}): {result.stderr.strip()[:200]}"
        if ref is None:
            return "refused", f"pydicom: {pydicom_error}; medlab: {result.stderr.strip()[len('medlab: error: '):][:160]}"
        if name in DAMAGED:
            return "damaged", f"pydicom decodes it anyway; medlab: {result.stderr.strip()[len('medlab: error: '):][:160]}"
        return "mismatch", f"pydicom decodes it, medlab refuses: {result.stderr.strip()[:200]}"
    if ref is None:
        return "medlab-only", f"pydicom: {pydicom_error}"
    got = np.asarray(Image.open(out_png))
    if got.shape != ref.shape:
        return "mismatch", f"shape {got.shape} vs pydicom {ref.shape}"
    diff = np.abs(got.astype(np.int32) - ref.astype(np.int32))
    if diff.max() > 1:
        return "mismatch", f"max difference {diff.max()} at {np.unravel_index(diff.argmax(), diff.shape)}, {np.mean(diff > 1):.2%} of values"
    return "match", f"max difference {diff.max()}"


def bad_inputs(corpus, work):
    """(file, substring medlab's error must contain) for inputs that must fail cleanly."""
    bad = os.path.join(work, "bad")
    os.makedirs(bad, exist_ok=True)
    cases = []
    path = os.path.join(bad, "not_dicom.txt")
    with open(path, "w") as f:
        f.write("this is a text file, not DICOM\n" * 20)
    cases.append((path, "not a DICOM"))
    source = os.path.join(corpus, "MR_small.dcm")
    data = open(source, "rb").read()
    path = os.path.join(bad, "truncated_pixels.dcm")
    open(path, "wb").write(data[: len(data) - 3000])
    cases.append((path, "truncated"))
    ds = pydicom.dcmread(source)
    ds.Rows, ds.Columns = 640, 640  # more pixels than the Pixel Data holds
    path = os.path.join(bad, "rows_columns_too_big.dcm")
    ds.save_as(path)
    cases.append((path, "(7FE0,0010) Pixel Data has 8192 bytes"))
    ds = pydicom.dcmread(source)
    ds.Rows, ds.Columns, ds.NumberOfFrames = 65535, 65535, 1000  # refused before anything is allocated
    path = os.path.join(bad, "over_memory_limit.dcm")
    ds.save_as(path)
    cases.append((path, "limit on decoded pixel data"))
    for uid, label in (("1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.100 (MPEG2"),
                       ("1.2.840.10008.1.2.4.201", "transfer syntax 1.2.840.10008.1.2.4.201")):
        path = os.path.join(bad, f"syntax_{uid}.dcm")
        with_transfer_syntax(os.path.join(corpus, "MR_small_RLE.dcm"), uid, path)
        cases.append((path, label))
    return cases


def with_transfer_syntax(source, uid, path):
    """Copies `source` with another Transfer Syntax UID (pydicom 2.3 will not write UIDs it does not know)."""
    data = bytearray(open(source, "rb").read())
    assert data[128:132] == b"DICM" and data[132:136] == b"\x02\x00\x00\x00"  # (0002,0000) first
    old = pydicom.dcmread(source).file_meta.TransferSyntaxUID.encode()
    old += b"\0" * (len(old) % 2)
    new = uid.encode() + b"\0" * (len(uid) % 2)
    at = data.index(b"\x02\x00\x10\x00UI")
    assert data[at + 8 : at + 8 + len(old)] == old
    data[at + 6 : at + 8 + len(old)] = len(new).to_bytes(2, "little") + new
    group_length = int.from_bytes(data[140:144], "little") + len(new) - len(old)
    data[140:144] = group_length.to_bytes(4, "little")
    open(path, "wb").write(bytes(data))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--medlab", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--corpus", default=os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files"))
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    generated = os.path.join(args.workdir, "generated")
    subprocess.run([sys.executable, os.path.join(HERE, "pydicom_make_files.py"), generated], check=True)

    corpus = sorted(os.path.join(args.corpus, f) for f in os.listdir(args.corpus) if f.endswith(".dcm"))
    cases = [(f, 0) for f in corpus]
    cases += [(os.path.join(generated, f), 0) for f in sorted(os.listdir(generated))]
    cases += [(os.path.join(generated, "multiframe_96.dcm"), 57), (os.path.join(corpus[0].rsplit("/", 1)[0], "rtdose.dcm"), 14)]
    counts = {}
    failures = 0
    for path, frame in cases:
        status, detail = check_file(args.medlab, path, args.workdir, frame)
        counts[status] = counts.get(status, 0) + 1
        failures += status == "mismatch"
        label = os.path.basename(path) + (f" frame {frame + 1}" if frame else "")
        print(f"{status:12} {label:45} {detail}")
    for path, expected in bad_inputs(args.corpus, args.workdir):
        result = run_medlab(args.medlab, path, os.path.join(args.workdir, "bad.png"))
        ok = result.returncode == 1 and expected in result.stderr and result.stderr.startswith("medlab: error:")
        failures += not ok
        counts["bad input ok" if ok else "bad input WRONG"] = counts.get("bad input ok" if ok else "bad input WRONG", 0) + 1
        print(f"{'bad-ok' if ok else 'BAD-WRONG':12} {os.path.basename(path):45} exit {result.returncode}: {result.stderr.strip()[:150]}")
    print("summary:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
