// PNG and JPEG decoding into 8-bit RGB. With Grey16Mode::ClipLikePillow the pixels equal Pillow's
// ImageOps.exif_transpose(Image.open(f)).convert("RGB") exactly (tests/parity/pillow_parity_test.cpp),
// which is what transformers' load_image does. Note that a caller who hands the processor an
// Image.open(f) of their own gets neither the EXIF rotation nor load_image's convert: the processor's
// convert_to_rgb is also a plain convert("RGB"), so only the rotation would be missing.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "imaging/image.h"

namespace medlab {

// How 16-bit greyscale (no colour) pixels become 8 bits.
enum class Grey16Mode {
  // Linear stretch of the image's own minimum..maximum to 0..255 (rounded to nearest); a constant image
  // maps to its value's high byte. Keeps the detail of 10- to 16-bit X-rays visible.
  FullRange,
  // What Pillow does (it opens such a PNG as mode "I" and convert("RGB") clips each value to 0..255), so
  // what transformers feeds MedGemma: any value above 255 becomes white, which whitens most X-rays.
  ClipLikePillow,
};

struct DecodeOptions {
  // Images with more pixels are refused from their header, before any large allocation.
  uint64_t max_pixels = 100'000'000;
  // Rotate/flip by the EXIF Orientation tag as a viewer (and Pillow's ImageOps.exif_transpose) does.
  bool apply_exif_orientation = true;
  Grey16Mode grey16 = Grey16Mode::FullRange;
};

enum class ImageFormat { Unknown, Png, Jpeg };

// By magic bytes, never by file name.
ImageFormat detect_image_format(std::span<const uint8_t> bytes);

// Width and height from a PNG's or JPEG's header, without decoding; nullopt when they cannot be found.
std::optional<std::pair<uint32_t, uint32_t>> image_dimensions(std::span<const uint8_t> bytes);

// Decodes a PNG or JPEG held in memory. Alpha is dropped, not composited (Pillow's convert("RGB") does
// the same); 16-bit colour keeps each sample's high byte (as Pillow). Throws Error naming
// `name_for_errors` for anything that is not a complete PNG/JPEG within options.max_pixels.
Image decode_image(std::span<const uint8_t> bytes, const DecodeOptions& options, const std::string& name_for_errors);
Image decode_image_file(const std::filesystem::path& path, const DecodeOptions& options = {});

// 16-bit grey to RGB (each channel the same) by `mode`; exposed for DICOM and tests.
Image grey16_to_rgb(const Grey16Image& grey, Grey16Mode mode);

// The Orientation tag (1..8) of an EXIF block (the TIFF structure that follows "Exif\0\0"), or 1 when
// absent, out of range or unreadable. Every offset is bounds-checked: any bytes are safe to pass.
int exif_orientation(std::span<const uint8_t> tiff);

// The image as a viewer shows it for EXIF orientation 1..8 (2: mirrored, 3: upside down, 6: rotated
// 90 degrees clockwise to view, ...). Other values leave it unchanged.
Image apply_exif_orientation(const Image& image, int orientation);

}  // namespace medlab
