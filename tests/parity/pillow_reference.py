#!/usr/bin/env python3
"""Writes test images and what Pillow (and transformers' Gemma3ImageProcessor, through Pillow) makes of them.

    pillow_reference.py --out DIR --group decode|resize|preprocess

Every image is generated deterministically. In DIR: the image files, raw 8-bit RGB (*.rgb, rows top to
bottom) and float32 (*.f32, little-endian) references, and manifest.json describing them:

  decode:     each file and Image.open(f) -> ImageOps.exif_transpose -> convert("RGB"), what transformers'
              load_image does.
  resize:     that RGB image (the input) and Image.resize(size, Image.BILINEAR) at several sizes.
  preprocess: the input, and the processor's pixel_values for it (rescale 1/255 in float64 stored as
              float32, normalise with mean 0.5 and std 0.5 in float32, channels first), with pan-and-scan
              crops (their boxes, resized crops and pixel values) for the images that get some.

Pan-and-scan follows transformers' Gemma3ImageProcessor.pan_and_scan (transcribed below: transformers
itself is not needed). Uses Debian's python3-pil and python3-numpy (scripts/setup.sh installs them).
"""
import argparse
import io
import json
import math
import struct
import sys
import zlib
from pathlib import Path

try:
    import numpy as np
    import PIL
    from PIL import Image, ImageOps
except ImportError as e:
    sys.exit(f"pillow_reference.py: {e}: install python3-pil and python3-numpy (scripts/setup.sh does)")

SIZE = (896, 896)  # MedGemma's preprocessor_config.json "size"
PAN_AND_SCAN = dict(min_crop_size=256, max_num_crops=4, min_ratio_to_activate=1.2)
# The preprocess group covers these and the cases marked for it (chosen to get crops, or just not);
# float pixel_values are written (9.6 MB each) only for the first two.
PREPROCESS_CASES = ["baseline-640x480.jpg", "rgb-1200x400.png", "rgb-1x1.png", "grey-300x200.png"]


# --- deterministic content ---------------------------------------------------------------------------

def pattern(width, height, channels, seed):
    """Gradients and noise in a checkerboard of 16-pixel squares: smooth areas and worst-case edges."""
    rng = np.random.RandomState(seed)
    y, x = np.arange(height, dtype=np.int32)[:, None], np.arange(width, dtype=np.int32)[None, :]
    smooth = [x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), ((x + 2 * y) * 3) % 256,
              255 - x * 255 // max(width - 1, 1)]
    smooth = np.stack([np.broadcast_to(s, (height, width)) for s in smooth[:channels]], axis=-1)
    noise = rng.randint(0, 256, (height, width, channels), dtype=np.uint8)
    squares = ((x // 16 + y // 16) % 2).astype(bool)[..., None]
    return np.where(squares, noise, smooth).astype(np.uint8)


# --- a minimal PNG writer, for layouts Pillow does not write (2-bit grey, 16-bit colour, interlaced) ---

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def pack_rows(samples, bit_depth):
    """samples: (h, w, c) ints -> list of packed scanlines (big-endian 16-bit, MSB-first sub-byte)."""
    h, w, c = samples.shape
    if bit_depth == 16:
        return [samples[r].astype(">u2").tobytes() for r in range(h)]
    if bit_depth == 8:
        return [samples[r].astype(np.uint8).tobytes() for r in range(h)]
    per_byte = 8 // bit_depth
    rows = []
    for r in range(h):
        flat = list(samples[r].reshape(-1)) + [0] * (-(w * c) % per_byte)
        rows.append(bytes(sum(int(v) << (8 - bit_depth * (i + 1)) for i, v in enumerate(flat[k:k + per_byte]))
                          for k in range(0, len(flat), per_byte)))
    return rows


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_bytes(samples, colour_type, bit_depth, interlaced=False):
    h, w, _ = samples.shape
    if interlaced:
        passes = [samples[y0::dy, x0::dx] for x0, y0, dx, dy in ADAM7]
        rows = [row for p in passes if p.size for row in pack_rows(p, bit_depth)]
    else:
        rows = pack_rows(samples, bit_depth)
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, colour_type, 0, 0, 1 if interlaced else 0)
    idat = zlib.compress(b"".join(b"\0" + row for row in rows), 6)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


# --- the cases ---------------------------------------------------------------------------------------

def saved(image, fmt, **params):
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def exif_with_orientation(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def cases():
    """(name, file bytes, extra sizes to resize to, in the preprocess group?) for every test image."""
    rgb = lambda w, h, seed: Image.fromarray(pattern(w, h, 3, seed), "RGB")
    png = lambda im: saved(im, "PNG", compress_level=1)
    yield "rgb-1x1.png", png(rgb(1, 1, 1)), [(1, 1), (5, 3)], False
    yield "rgb-3x7.png", png(rgb(3, 7, 2)), [(2, 2), (1, 1)], False
    yield "rgb-7x3.png", png(rgb(7, 3, 3)), [(13, 29)], False
    yield "rgb-1000x750.png", png(rgb(1000, 750, 4)), [(224, 224), (333, 101)], False
    yield "rgb-4000x3000.png", png(rgb(4000, 3000, 5)), [(448, 448)], True
    yield "rgb-2000x100.png", png(rgb(2000, 100, 6)), [], True
    yield "rgb-90x1500.png", png(rgb(90, 1500, 7)), [(17, 1)], True
    yield "rgb-1200x400.png", png(rgb(1200, 400, 8)), [], True
    yield "rgb-300x1000.png", png(rgb(300, 1000, 9)), [], True
    yield "rgb-896x896.png", png(rgb(896, 896, 10)), [], True
    yield "rgb-896x500.png", png(rgb(896, 500, 11)), [(500, 896)], False
    yield "rgb-897x895.png", png(rgb(897, 895, 12)), [], False
    yield "grey-300x200.png", png(Image.fromarray(pattern(300, 200, 1, 13)[..., 0], "L")), [], False
    yield "grey-alpha-120x80.png", png(Image.fromarray(pattern(120, 80, 2, 14), "LA")), [], False
    yield "rgba-333x222.png", png(Image.fromarray(pattern(333, 222, 4, 15), "RGBA")), [], False
    palette = rgb(150, 100, 16).quantize(colors=200)
    yield "palette-150x100.png", png(palette), [], False
    small_palette = rgb(64, 48, 17).quantize(colors=16)
    yield "palette-trns-64x48.png", saved(small_palette, "PNG", transparency=3), [], False
    yield "bilevel-40x30.png", png(Image.fromarray(pattern(40, 30, 1, 18)[..., 0] > 127)), [], False
    grey16 = (pattern(256, 200, 1, 19).astype(np.uint32) * 257)[..., 0]
    grey16[::3] //= 256  # some rows in 0..255, where Pillow's clipping keeps detail
    yield "grey16-256x200.png", png_bytes(grey16[..., None], 0, 16), [], False
    yield "grey2bit-33x17.png", png_bytes(pattern(33, 17, 1, 20) >> 6, 0, 2), [], False
    yield "grey4bit-interlaced-31x9.png", png_bytes(pattern(31, 9, 1, 21) >> 4, 0, 4, interlaced=True), [], False
    rgb16 = pattern(50, 40, 3, 22).astype(np.uint32) * 251 % 65536
    yield "rgb16-50x40.png", png_bytes(rgb16, 2, 16), [], False
    yield "grey-alpha16-20x10.png", png_bytes(pattern(20, 10, 2, 23).astype(np.uint32) * 259, 4, 16), [], False
    yield "rgb-interlaced-97x61.png", png_bytes(pattern(97, 61, 3, 24), 2, 8, interlaced=True), [], False
    yield "rgba-interlaced-8x8.png", png_bytes(pattern(8, 8, 4, 25), 6, 8, interlaced=True), [], False
    jpeg = lambda im, **kw: saved(im, "JPEG", **kw)
    yield "baseline-640x480.jpg", jpeg(rgb(640, 480, 26), quality=90), [(224, 224)], False
    yield "progressive-500x375.jpg", jpeg(rgb(500, 375, 27), quality=85, progressive=True), [], True
    yield "baseline444-123x77.jpg", jpeg(rgb(123, 77, 28), quality=95, subsampling=0), [], False
    yield "progressive422-211x99.jpg", jpeg(rgb(211, 99, 29), progressive=True, subsampling=1), [], False
    grey = Image.fromarray(pattern(300, 301, 1, 30)[..., 0], "L")
    yield "grey-300x301.jpg", jpeg(grey), [], False
    yield "grey-progressive-64x64.jpg", jpeg(grey.crop((0, 0, 64, 64)), progressive=True), [], False
    yield "cmyk-100x80.jpg", jpeg(Image.fromarray(pattern(100, 80, 4, 31), "CMYK")), [], False
    for orientation in range(1, 9):
        image = rgb(64, 40, 40 + orientation)
        yield (f"exif-orientation-{orientation}.jpg", jpeg(image, exif=exif_with_orientation(orientation)),
               [], orientation == 6)
    yield "exif-orientation-6.png", saved(rgb(30, 20, 50), "PNG", exif=exif_with_orientation(6)), [], False


# --- the processor's steps, as transformers does them ------------------------------------------------

def pan_and_scan_boxes(width, height, min_crop_size, max_num_crops, min_ratio_to_activate):
    """Gemma3ImageProcessor.pan_and_scan's crop rectangles (x, y, w, h), in its order."""
    if width >= height:
        if width / height < min_ratio_to_activate:
            return []
        num_w = int(math.floor(width / height + 0.5))
        num_w = min(int(math.floor(width / min_crop_size)), num_w)
        num_w = min(max_num_crops, max(2, num_w))
        num_h = 1
    else:
        if height / width < min_ratio_to_activate:
            return []
        num_h = int(math.floor(height / width + 0.5))
        num_h = min(int(math.floor(height / min_crop_size)), num_h)
        num_h = min(max_num_crops, max(2, num_h))
        num_w = 1
    crop_w = int(math.ceil(width / num_w))
    crop_h = int(math.ceil(height / num_h))
    if min(crop_w, crop_h) < min_crop_size:
        return []
    return [(crop_w * i, crop_h * j, min(crop_w, width - crop_w * i), min(crop_h, height - crop_h * j))
            for j in range(num_h) for i in range(num_w)]


def pixel_values(resized):
    """rescale (float64 multiply, stored float32) then normalise (float32), channels first."""
    x = (np.asarray(resized).astype(np.float64) * (1 / 255)).astype(np.float32)
    mean = np.array([0.5, 0.5, 0.5], dtype=np.float32)
    std = np.array([0.5, 0.5, 0.5], dtype=np.float32)
    return np.ascontiguousarray(((x - mean) / std).transpose(2, 0, 1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--group", required=True, choices=["decode", "resize", "preprocess"])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    def write(name, data):
        (args.out / name).write_bytes(data)
        return name

    entries = []
    for name, data, extra_sizes, preprocess in cases():
        decoded = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
        entry = {"name": name, "width": decoded.width, "height": decoded.height,
                 "rgb": write(name + ".rgb", decoded.tobytes())}
        if args.group == "decode":
            entry["file"] = write(name, data)
        elif args.group == "resize":
            entry["resized"] = [
                {"width": w, "height": h,
                 "rgb": write(f"{name}.{w}x{h}.rgb", decoded.resize((w, h), Image.BILINEAR).tobytes())}
                for w, h in [SIZE] + extra_sizes]
        else:
            if not (preprocess or name in PREPROCESS_CASES):
                continue
            # do_pan_and_scan=True: the whole image, then its crops (when it gets some).
            boxes = [(0, 0, decoded.width, decoded.height)]
            boxes += pan_and_scan_boxes(decoded.width, decoded.height, **PAN_AND_SCAN)
            array = np.asarray(decoded)
            entry["inputs"] = []
            for k, (x, y, w, h) in enumerate(boxes):
                resized = Image.fromarray(array[y:y + h, x:x + w]).resize(SIZE, Image.BILINEAR)
                model_input = {"box": [x, y, w, h], "rgb": write(f"{name}.{k}.rgb", resized.tobytes())}
                if name in PREPROCESS_CASES[:2]:
                    model_input["pixel_values"] = write(f"{name}.{k}.f32", pixel_values(resized).tobytes())
                entry["inputs"].append(model_input)
        entries.append(entry)

    manifest = {"pillow": PIL.__version__, "numpy": np.__version__, "size": list(SIZE),
                "pan_and_scan": PAN_AND_SCAN, "images": entries}
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"pillow_reference.py: {len(entries)} images ({args.group}) in {args.out}, Pillow {PIL.__version__}")


if __name__ == "__main__":
    main()
