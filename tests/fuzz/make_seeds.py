#!/usr/bin/env python3
"""Writes the committed seed inputs of the fuzz targets: tests/fuzz/<target>/seed-*.

Usage: make_seeds.py [--out tests/fuzz]. Every seed is small, synthetic and deterministic, made here from
scratch (needs Debian's python3-pil, python3-numpy and python3-pydicom). scripts/fuzz.sh adds larger seeds
at fuzz time (pydicom's test corpus, medlab's own test models); crash inputs found by fuzzing are kept
beside these seeds as crash-* and replayed by the tests too.
"""
import argparse
import base64
import io
import json
import os
import struct

import sys

import numpy as np
from PIL import Image
import pydicom
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "parity"))
from pydicom_make_files import base  # noqa: E402  the parity test's minimal image dataset

OUT = None


def put(target, name, data):
    folder = os.path.join(OUT, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors(tensors, metadata=None):
    """tensors: (name, dtype, shape, raw bytes) in file order."""
    header, offset = {}, 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(t[3] for t in tensors)


def seeds_safetensors():
    f32 = np.arange(6, dtype=np.float32).tobytes()
    bf16 = (np.arange(4, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16).tobytes()
    f16 = np.array([0.5, -2], dtype=np.float16).tobytes()
    put("safetensors", "mixed.safetensors", safetensors(
        [("a.weight", "F32", [2, 3], f32), ("b.weight", "BF16", [4], bf16), ("c.bias", "F16", [1, 2], f16),
         ("d.quant_state", "U8", [3], b"\x01\x02\x03")], {"format": "pt"}))
    put("safetensors", "empty.safetensors", safetensors([]))
    put("safetensors", "scalar.safetensors", safetensors([("s", "F32", [], b"\0\0\x80\x3f")], {}))


def seeds_shard_index():
    index = {"metadata": {"total_size": 96},
             "weight_map": {"language_model.model.embed_tokens.weight": "model-00001-of-00002.safetensors",
                            "language_model.model.norm.weight": "model-00002-of-00002.safetensors",
                            "vision_tower.vision_model.post_layernorm.weight": "model-00002-of-00002.safetensors"}}
    put("shard_index", "two-shards.json", json.dumps(index, indent=2))
    put("shard_index", "empty.json", json.dumps({"weight_map": {}}))


def seeds_model_config():
    text = {"vocab_size": 262208, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 32, "max_position_embeddings": 4096,
            "sliding_window": 512, "query_pre_attn_scalar": 32, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
            "rope_local_base_freq": 10000.0, "rope_scaling": {"rope_type": "linear", "factor": 8.0},
            "sliding_window_pattern": 6, "final_logit_softcapping": None, "attn_logit_softcapping": None,
            "model_type": "gemma3_text"}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "num_channels": 3, "image_size": 64, "patch_size": 16, "layer_norm_eps": 1e-6,
              "model_type": "siglip_vision_model"}
    put("model_config", "multimodal.json", json.dumps(
        {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3", "text_config": text,
         "vision_config": vision, "mm_tokens_per_image": 4, "boi_token_index": 255999, "eoi_token_index": 256000,
         "image_token_index": 262144, "eos_token_id": [1, 106], "torch_dtype": "bfloat16"}, indent=1))
    put("model_config", "text.json", json.dumps(
        dict({k: v for k, v in text.items() if k != "sliding_window_pattern"}, architectures=["Gemma3ForCausalLM"],
             eos_token_id=1, torch_dtype="bfloat16", layer_types=["sliding_attention", "full_attention"]), indent=1))


def seeds_tokenizer():
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>"]
    vocab = {t: i for i, t in enumerate(specials)}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    pieces = ["\u2581", "a", "b", "c", "e", "r", "x", "y", "\n", "肺", "\u2581a", "ab", "\u2581ab", "ra", "ay", "\u2581x", "\u2581x-ray"]
    merges = [["\u2581", "a"], ["a", "b"], ["\u2581a", "b"], ["r", "a"], ["a", "y"], ["\u2581", "x"]]
    for p in pieces[:-1]:
        vocab[p] = len(vocab)
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": True} for i, t in enumerate(specials)]
    added.append({"id": len(vocab), "content": "<image_soft_token>", "single_word": False, "lstrip": False,
                  "rstrip": False, "normalized": False, "special": True})
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
        "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": False},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "<bos>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<bos>": {"id": "<bos>", "ids": [2], "tokens": ["<bos>"]}}},
        "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                                                     {"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": merges}}
    put("tokenizer_json", "small.json", json.dumps(tokenizer, ensure_ascii=False))
    texts = {"question.txt": "Describe this chest X-ray.",
             "turns.txt": "<start_of_turn>user\nIs there a pneumothorax?<end_of_turn>\n<start_of_turn>model\n",
             "chinese.txt": "这张胸片显示什么？ 肺野清晰。",
             "spaces.txt": "  two  spaces\tand\ttabs\n\n\nlines \u2581 metaspace",
             "bytes.txt": b"valid \xc3\xa9 then bad \xc3\x28 \xff\xfe and \xf0\x9f\xa9\xbb",
             "chat.txt": "Describe the film.\x01The heart is not enlarged.\x01And the lungs?",
             "image.txt": "<start_of_image> <image_soft_token><end_of_image> <0x41>"}
    for name, text in texts.items():
        put("tokenizer_encode", name, text if isinstance(text, bytes) else text.encode())


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf(metadata, tensors, alignment=32):
    """metadata: (key, type code, packed value bytes); tensors: (name, ggml type, ne, raw bytes)."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    for key, code, value in metadata:
        out += gguf_string(key) + struct.pack("<I", code) + value
    offset, infos, data = 0, b"", b""
    for name, ggml_type, ne, raw in tensors:
        infos += gguf_string(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
        infos += struct.pack("<IQ", ggml_type, offset)
        data += raw + b"\0" * (-len(raw) % alignment)
        offset = len(data)
    out += infos
    out += b"\0" * (-len(out) % alignment)
    return out + data


def seeds_gguf():
    u32 = lambda v: struct.pack("<I", v)
    f32 = lambda v: struct.pack("<f", v)
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"] + ["<0x%02X>" % b for b in range(256)] + ["\u2581", "a", "\u2581a"]
    arr = lambda code, items: struct.pack("<IQ", code, len(items)) + b"".join(items)
    metadata = [
        ("general.architecture", 8, gguf_string("gemma3")), ("general.alignment", 4, u32(32)),
        ("gemma3.context_length", 4, u32(4096)), ("gemma3.embedding_length", 4, u32(32)),
        ("gemma3.block_count", 4, u32(1)), ("gemma3.feed_forward_length", 4, u32(64)),
        ("gemma3.attention.head_count", 4, u32(2)), ("gemma3.attention.head_count_kv", 4, u32(1)),
        ("gemma3.attention.key_length", 4, u32(16)), ("gemma3.attention.value_length", 4, u32(16)),
        ("gemma3.attention.sliding_window", 4, u32(512)), ("gemma3.rope.freq_base", 6, f32(1e6)),
        ("gemma3.attention.layer_norm_rms_epsilon", 6, f32(1e-6)),
        ("tokenizer.ggml.model", 8, gguf_string("llama")),
        ("tokenizer.ggml.tokens", 9, arr(8, [gguf_string(t) for t in tokens])),
        ("tokenizer.ggml.scores", 9, arr(6, [f32(-i) for i in range(len(tokens))])),
        ("tokenizer.ggml.token_type", 9, arr(5, [struct.pack("<i", 3 if i < 6 else 6 if i < 262 else 1) for i in range(len(tokens))])),
        ("tokenizer.ggml.bos_token_id", 4, u32(2)), ("tokenizer.ggml.eos_token_id", 4, u32(1)),
        ("tokenizer.ggml.add_bos_token", 7, b"\x01"), ("general.name", 8, gguf_string("seed")),
        ("general.flags", 9, arr(7, [b"\x00", b"\x01"])), ("general.count", 10, struct.pack("<Q", 7)),
        ("general.delta", 11, struct.pack("<q", -7)), ("general.ratio", 12, struct.pack("<d", 0.25)),
        ("general.small", 0, b"\x05"), ("general.short", 3, struct.pack("<h", -3)),
    ]
    rng = np.random.default_rng(1)

    def q8_0(rows, cols):  # per row, blocks of 32: an f16 scale, then 32 int8
        return b"".join(np.float16(0.01).tobytes() + rng.integers(-127, 128, 32, dtype=np.int8).tobytes()
                        for _ in range(rows * cols // 32))

    def q4_0(rows, cols):  # per row, blocks of 32: an f16 scale, then 16 bytes of 4-bit pairs
        return b"".join(np.float16(0.02).tobytes() + rng.integers(0, 256, 16, dtype=np.uint8).tobytes()
                        for _ in range(rows * cols // 32))

    f32s = lambda n: rng.normal(0, 0.1, n).astype(np.float32).tobytes()
    tensors = [("token_embd.weight", 1, [32, len(tokens)], rng.normal(0, 1, 32 * len(tokens)).astype(np.float16).tobytes()),
               ("output_norm.weight", 0, [32], f32s(32))]
    for name, ggml_type, ne in [("attn_norm", 0, [32]), ("attn_q", 8, [32, 32]), ("attn_k", 8, [32, 16]),
                                ("attn_v", 2, [32, 16]), ("attn_output", 0, [32, 32]), ("attn_q_norm", 0, [16]),
                                ("attn_k_norm", 0, [16]), ("post_attention_norm", 0, [32]), ("ffn_norm", 0, [32]),
                                ("ffn_gate", 2, [32, 64]), ("ffn_up", 8, [32, 64]), ("ffn_down", 1, [64, 32]),
                                ("post_ffw_norm", 0, [32])]:
        n = int(np.prod(ne))
        raw = {0: lambda: f32s(n), 1: lambda: rng.normal(0, 0.1, n).astype(np.float16).tobytes(),
               2: lambda: q4_0(ne[1] if len(ne) > 1 else 1, ne[0]), 8: lambda: q8_0(ne[1] if len(ne) > 1 else 1, ne[0])}[ggml_type]()
        tensors.append(("blk.0.%s.weight" % name, ggml_type, ne, raw))
    put("gguf", "small.gguf", gguf(metadata, tensors))
    put("gguf", "header-only.gguf", gguf([("general.architecture", 8, gguf_string("gemma3"))], []))


def png(image, **options):
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **options)
    return buffer.getvalue()


def jpeg(image, **options):
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def seeds_images():
    rng = np.random.default_rng(2)
    rgb = Image.fromarray(rng.integers(0, 256, (9, 17, 3), dtype=np.uint8), "RGB")
    grey = rgb.convert("L")
    put("image_decode", "rgb.png", png(rgb))
    put("image_decode", "grey.png", png(grey))
    put("image_decode", "rgba.png", png(rgb.convert("RGBA")))
    put("image_decode", "palette.png", png(rgb.convert("P")))
    put("image_decode", "grey16.png", png(Image.fromarray(rng.integers(0, 4096, (9, 17), dtype=np.uint16))))
    put("image_decode", "bilevel.png", png(grey.convert("1")))
    put("image_decode", "baseline.jpg", jpeg(rgb, quality=80))
    put("image_decode", "grey.jpg", jpeg(grey))
    put("image_decode", "progressive.jpg", jpeg(rgb, progressive=True, subsampling=2))
    put("image_decode", "cmyk.jpg", jpeg(rgb.convert("CMYK")))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to view
    put("image_decode", "exif-rotated.jpg", jpeg(rgb, exif=exif.tobytes()))


def dicom(name, pixels, photometric, transfer_syntax=ExplicitVRLittleEndian, signed=False, bits_stored=None, **attributes):
    ds = base(name, "1.2.840.10008.5.1.4.1.1.7", attributes.pop("Modality", "OT"), pixels, photometric, signed, bits_stored)
    meta = ds.file_meta
    for key, value in attributes.items():
        setattr(ds, key, value)
    if transfer_syntax == RLELossless:
        ds.compress(RLELossless)
    elif transfer_syntax == ImplicitVRLittleEndian:
        meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds.is_implicit_VR = True
    buffer = io.BytesIO()
    ds.save_as(buffer, write_like_original=False)
    put("dicom", name, buffer.getvalue())


def seeds_dicom():
    rng = np.random.default_rng(3)
    mono8 = rng.integers(0, 256, (1, 12, 10), dtype=np.uint8)
    dicom("mono8.dcm", mono8, "MONOCHROME2")
    ct = rng.integers(-1024, 2000, (1, 12, 10)).astype(np.int16)
    dicom("ct-window.dcm", ct, "MONOCHROME2", signed=True, bits_stored=12, Modality="CT", RescaleSlope=1,
          RescaleIntercept=-1024, WindowCenter=[40, -600], WindowWidth=[400, 1500], VOILUTFunction="LINEAR")
    dicom("cr-mono1.dcm", rng.integers(0, 1024, (1, 12, 10), dtype=np.uint16), "MONOCHROME1", bits_stored=10,
          Modality="CR", WindowCenter=512, WindowWidth=1024, VOILUTFunction="SIGMOID")
    dicom("rgb.dcm", rng.integers(0, 256, (1, 8, 6, 3), dtype=np.uint8), "RGB")
    dicom("multiframe.dcm", rng.integers(0, 4096, (3, 8, 6), dtype=np.uint16), "MONOCHROME2", bits_stored=12)
    dicom("implicit.dcm", mono8, "MONOCHROME2", ImplicitVRLittleEndian)
    dicom("palette.dcm", mono8, "PALETTE COLOR",
          RedPaletteColorLookupTableDescriptor=[256, 0, 16], GreenPaletteColorLookupTableDescriptor=[256, 0, 16],
          BluePaletteColorLookupTableDescriptor=[256, 0, 16],
          RedPaletteColorLookupTableData=np.arange(0, 65536, 256, dtype=np.uint16).tobytes(),
          GreenPaletteColorLookupTableData=np.arange(65535, 0, -256, dtype=np.uint16).tobytes(),
          BluePaletteColorLookupTableData=np.full(256, 30000, np.uint16).tobytes())
    try:
        dicom("rle.dcm", rng.integers(0, 4096, (1, 12, 10), dtype=np.uint16), "MONOCHROME2", RLELossless, bits_stored=12)
    except Exception as e:  # pydicom's RLE encoder needs numpy; say so rather than lose the seed silently
        raise SystemExit(f"rle.dcm: pydicom could not RLE-encode: {e}")


def seeds_requests():
    tiny_png = png(Image.fromarray(np.full((4, 4, 3), 128, np.uint8), "RGB"))
    uri = "data:image/png;base64," + base64.b64encode(tiny_png).decode()
    put("data_uri", "png.txt", uri)
    put("data_uri", "dicom.txt", "data:application/dicom;base64,RElDTQ==")
    put("data_uri", "params.txt", "data:image/JPEG;name=x.jpg;base64,/9j/4A==")
    put("data_uri", "plain.txt", "aGVsbG8gd29ybGQ=")
    put("data_uri", "not-base64.txt", "data:text/plain,hello")
    predict = {"question": "Describe this chest X-ray.", "image": uri, "max_new_tokens": 16, "temperature": 0.7,
               "top_p": 0.9, "seed": 3, "stream": False, "window": "lung", "frame": 0,
               "region": {"x": 1, "y": 1, "width": 2, "height": 2}}
    put("api_request", "predict.json", json.dumps(predict))
    put("api_request", "predict-text.json", json.dumps({"question": "What is a pneumothorax?"}))
    put("api_request", "render.json", json.dumps({"image": uri, "view": "model_input", "format": "json", "window": "file"}))
    chat = {"model": "medgemma", "max_tokens": 20, "temperature": 0, "seed": 1, "stream": True, "logprobs": True,
            "top_logprobs": 3, "stop": ["\n\n"],
            "messages": [{"role": "system", "content": "You are a radiology assistant."},
                         {"role": "user", "content": [{"type": "text", "text": "Describe"},
                                                      {"type": "image_url", "image_url": {"url": uri}}]},
                         {"role": "assistant", "content": "A chest film."},
                         {"role": "user", "content": "Any fracture?"}]}
    put("api_request", "chat.json", json.dumps(chat))


def main():
    global OUT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    OUT = parser.parse_args().out
    seeds_safetensors()
    seeds_shard_index()
    seeds_model_config()
    seeds_tokenizer()
    seeds_gguf()
    seeds_images()
    seeds_dicom()
    seeds_requests()


if __name__ == "__main__":
    main()
