#!/usr/bin/env python3
"""Encodes the JPEGs of llama_vision_parity.mjs and writes, for every test image, the picture that
transformers' Gemma3ImageProcessor shows the model: Image.open -> ImageOps.exif_transpose -> convert("RGB")
-> resize((size, size), Image.BILINEAR), saved as an 8-bit RGB PNG (lossless, so any decoder reads it back
exactly).

    pillow_model_input.py REQUEST.json
    request: {"size": 64, "images": [{"file": path, "model_input": path,
                                      "jpeg_from": ppm path, "quality": 90, "subsampling": 2}]}

"jpeg_from" (with quality and subsampling) first writes `file` as a JPEG encoded by Pillow from that PPM.
Uses Debian's python3-pil (scripts/setup.sh installs it).
"""
import json
import sys

try:
    from PIL import Image, ImageOps
except ImportError as e:
    sys.exit(f"pillow_model_input.py: {e}: install python3-pil (scripts/setup.sh does)")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: pillow_model_input.py REQUEST.json")
    with open(sys.argv[1], encoding="utf-8") as f:
        request = json.load(f)
    size = (request["size"], request["size"])
    for image in request["images"]:
        if "jpeg_from" in image:
            Image.open(image["jpeg_from"]).save(image["file"], "JPEG", quality=image["quality"],
                                                subsampling=image["subsampling"])
        rgb = ImageOps.exif_transpose(Image.open(image["file"])).convert("RGB")
        # Pillow returns a copy when the size is already right, as the processor's resize does.
        rgb.resize(size, Image.BILINEAR).save(image["model_input"], "PNG")


if __name__ == "__main__":
    main()
