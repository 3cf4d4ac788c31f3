#!/usr/bin/env python3
"""Writes the DICOM files pydicom's own test corpus lacks, for medlab's pydicom parity test.

Usage: pydicom_make_files.py OUTDIR. Every file is synthetic (no patient data) and deterministic
(fixed seeds), so the parity test compares the same bytes on every run.
"""
import os
import sys

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"


def base(path, sop_class, modality, pixels, photometric, signed=False, bits_stored=None):
    """A minimal image dataset around `pixels` (frames, rows, columns[, samples])."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[path])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(path, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[path, "series"])
    frames = pixels.shape[0]
    ds.Rows, ds.Columns = pixels.shape[1], pixels.shape[2]
    ds.SamplesPerPixel = pixels.shape[3] if pixels.ndim == 4 else 1
    if ds.SamplesPerPixel == 3:
        ds.PlanarConfiguration = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PhotometricInterpretation = photometric
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = bits_stored or bits
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = pixels.tobytes()
    return ds


def ct_slice(rng, size=256):
    """A phantom in HU: air, a body disc of soft tissue with fat, lungs, bone ring; stored = HU + 1024."""
    y, x = np.mgrid[0:size, 0:size] / size - 0.5
    r = np.hypot(x, y)
    hu = np.full((size, size), -1000.0)
    hu[r < 0.45] = 40
    hu[(r < 0.45) & (r > 0.40)] = -100
    hu[np.hypot(x - 0.15, y) < 0.12] = -850
    hu[np.hypot(x + 0.15, y) < 0.12] = -850
    hu[(r < 0.30) & (r > 0.27)] = 900
    hu += rng.normal(0, 20, hu.shape)
    return np.clip(np.round(hu + 1024), 0, 4095).astype(np.int16)


def save(ds, out, name):
    ds.save_as(os.path.join(out, name), write_like_original=False)


def main(out):
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20240601)

    # Chest film, MONOCHROME1, 12 bits in 16, with a window.
    film = (np.linspace(300, 3800, 300)[None, :] + rng.normal(0, 60, (240, 300))).clip(0, 4095).astype(np.uint16)
    ds = base("cr_monochrome1", CR_STORAGE, "CR", film[None], "MONOCHROME1", bits_stored=12)
    ds.WindowCenter, ds.WindowWidth = 2000, 3000
    save(ds, out, "cr_monochrome1.dcm")

    # CT with rescale and several windows (soft tissue, lung, bone), LINEAR.
    ct = ct_slice(rng)
    ds = base("ct_windows", CT_STORAGE, "CT", ct[None], "MONOCHROME2", signed=True)
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, -1024, "HU"
    ds.WindowCenter, ds.WindowWidth = [40, -600, 400], [400, 1500, 1800]
    ds.WindowCenterWidthExplanation = ["SOFT TISSUE", "LUNG", "BONE"]
    save(ds, out, "ct_windows.dcm")

    for function in ("LINEAR_EXACT", "SIGMOID"):
        ds = base("ct_" + function, CT_STORAGE, "CT", ct[None], "MONOCHROME2", signed=True)
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.WindowCenter, ds.WindowWidth = 50, 351
        ds.VOILUTFunction = function
        save(ds, out, f"ct_{function.lower()}.dcm")

    # Fractional rescale on unsigned data.
    mr = (rng.random((1, 128, 160)) * 3000).astype(np.uint16)
    ds = base("mr_slope", "1.2.840.10008.5.1.4.1.1.4", "MR", mr, "MONOCHROME2")
    ds.RescaleSlope, ds.RescaleIntercept = 0.5, 10
    ds.WindowCenter, ds.WindowWidth = 700.5, 1200.25
    save(ds, out, "mr_slope.dcm")

    # VOI LUT Sequence: a 16-bit LUT over stored values 100..1123 (gamma curve).
    img = (rng.random((1, 200, 200)) * 1400).astype(np.uint16)
    ds = base("voi_lut", "1.2.840.10008.5.1.4.1.1.1.1", "DX", img, "MONOCHROME2")
    item = Dataset()
    item.add_new(0x00283002, "US", [1024, 100, 16])  # LUT Descriptor
    item.add_new(0x00283006, "US", [int(v) for v in (np.linspace(0, 1, 1024) ** 0.6 * 65535).round()])
    item.LUTExplanation = "GAMMA"
    ds.VOILUTSequence = Sequence([item])
    save(ds, out, "voi_lut.dcm")

    # Modality LUT Sequence: stored 0..511 mapped through a square root.
    img = (rng.random((1, 100, 120)) * 600).astype(np.uint16)
    ds = base("modality_lut", "1.2.840.10008.5.1.4.1.1.7", "OT", img, "MONOCHROME2")
    item = Dataset()
    item.add_new(0x00283002, "US", [512, 0, 16])  # 16 bits: pydicom 2.3 cannot apply 12-bit LUTs
    item.add_new(0x00283006, "US", [int(v) for v in (np.sqrt(np.arange(512) / 511) * 40950).round()])
    item.ModalityLUTType = "OD"
    ds.ModalityLUTSequence = Sequence([item])
    save(ds, out, "modality_lut.dcm")

    # Big multi-frame: 96 frames of 256 x 256, 16-bit, a window.
    frames = np.stack([ct_slice(rng) + k for k in range(96)]).astype(np.int16)
    ds = base("multiframe", SC_STORAGE, "OT", frames, "MONOCHROME2", signed=True)
    ds.WindowCenter, ds.WindowWidth = 1100, 700
    save(ds, out, "multiframe_96.dcm")

    # Colour: RGB planar configuration 1, YBR_FULL, PALETTE COLOR.
    rgb = rng.integers(0, 256, (1, 60, 80, 3), dtype=np.uint8)
    ds = base("rgb_planar", SC_STORAGE, "OT", rgb, "RGB")
    ds.PlanarConfiguration = 1
    ds.PixelData = np.ascontiguousarray(rgb[0].transpose(2, 0, 1)).tobytes()
    save(ds, out, "rgb_planar1.dcm")

    ybr = rng.integers(16, 240, (1, 60, 80, 3), dtype=np.uint8)
    save(base("ybr_full", SC_STORAGE, "OT", ybr, "YBR_FULL"), out, "ybr_full.dcm")

    index = rng.integers(0, 256, (1, 90, 110), dtype=np.uint8)
    ds = base("palette", SC_STORAGE, "OT", index, "PALETTE COLOR")
    for colour, curve in (("Red", np.arange(256) * 257), ("Green", (255 - np.arange(256)) * 257),
                          ("Blue", (np.arange(256) % 64) * 1040)):
        element = {"Red": 0x1201, "Green": 0x1202, "Blue": 0x1203}[colour]
        ds.add_new(0x00280000 | (element - 0x100), "US", [256, 0, 16])  # Descriptor (0028,1101..1103)
        ds.add_new(0x00280000 | element, "OW", curve.astype("<u2").tobytes())
    save(ds, out, "palette.dcm")


if __name__ == "__main__":
    main(sys.argv[1])
