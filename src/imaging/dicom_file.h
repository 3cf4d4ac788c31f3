// DICOM reading: the attributes that describe an image and its decoded stored pixel values.
// DCMTK parses the file and decompresses (RLE, JPEG, JPEG-LS, deflate, either endianness);
// JPEG 2000 goes through OpenJPEG. Patient-identifying attributes are never read into these types.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace medlab::dicom {

// Rescale Slope/Intercept (PS3.3 C.11.1): modality value = stored * slope + intercept.
struct Rescale {
  double slope = 1.0;
  double intercept = 0.0;
};

// A LUT from a LUT Descriptor (entries, first stored value mapped, bits per entry) and its data.
struct Lut {
  int64_t first_mapped = 0;
  int bits = 16;
  std::vector<uint16_t> data;
  std::string explanation;
};

// VOI LUT Function (0028,1056); LINEAR when absent.
enum class VoiFunction { linear, linear_exact, sigmoid };
const char* voi_function_name(VoiFunction function);

struct Window {
  double center = 0.0;
  double width = 0.0;
  std::string explanation;
};

// The modality and VOI transforms that apply to one frame: top-level attributes, overridden by the
// Shared and then the Per-frame Functional Groups (enhanced multi-frame objects).
struct FrameTransforms {
  std::optional<Rescale> rescale;
  std::optional<Lut> modality_lut;
  std::vector<Window> windows;
  VoiFunction voi_function = VoiFunction::linear;
  std::vector<Lut> voi_luts;
};

// Where a slice sits in the patient: what series sorting needs.
struct Geometry {
  std::optional<std::array<double, 3>> position;     // Image Position (Patient) (0020,0032)
  std::optional<std::array<double, 6>> orientation;  // Image Orientation (Patient) (0020,0037)
  std::optional<std::array<double, 2>> pixel_spacing;
  std::optional<double> slice_thickness;
  std::optional<int64_t> instance_number;
};

struct DicomHeader {
  std::string file_name;  // the file's name without directories: what messages show
  std::string transfer_syntax_uid;
  std::string transfer_syntax_name;
  bool has_meta_header = true;  // false for a bare dataset without the Part 10 preamble
  std::string sop_class_uid;
  std::string modality;
  std::string photometric;  // after decoding: DCMTK's JPEG decoder turns YBR_FULL_422 into RGB
  uint32_t rows = 0;
  uint32_t columns = 0;
  uint32_t samples_per_pixel = 1;
  uint32_t frames = 1;
  int bits_allocated = 0;
  int bits_stored = 0;
  int high_bit = 0;
  bool is_signed = false;
  int planar_configuration = 0;  // as encoded; decoded pixels are always interleaved
  FrameTransforms transforms;    // the top-level ones
  // From functional groups: one per per-frame item, then the shared groups' for any frames after those;
  // empty if none. frame_transforms() picks a frame's.
  std::vector<FrameTransforms> per_frame;
  std::array<std::optional<Lut>, 3> palette;  // PALETTE COLOR red, green, blue
  Geometry geometry;
  std::string series_uid;  // for grouping slices only; never shown
  std::optional<int64_t> series_number;

  // The transforms for frame `frame` (0-based), functional groups applied.
  const FrameTransforms& frame_transforms(uint32_t frame) const;
};

// Decoded stored values: frames in order, rows top to bottom, samples interleaved per pixel, each a
// bytes_per_sample little-endian container as decoded (not yet masked to Bits Stored).
struct PixelData {
  std::vector<uint8_t> bytes;
  int bytes_per_sample = 1;
};

struct DicomImage {
  DicomHeader header;
  PixelData pixels;

  size_t samples_per_frame() const;
  // Stored value i of frame `frame`: masked to Bits Stored at High Bit, sign-extended if signed.
  int64_t stored(uint32_t frame, size_t i) const;
  // All stored values of one frame.
  std::vector<int64_t> frame_values(uint32_t frame) const;
};

struct ReadOptions {
  // Decoded pixel data larger than this is refused before anything is allocated.
  uint64_t max_pixel_bytes = uint64_t(4) << 30;
};

// Reads only the header: what `dicom info` and series sorting need; pixel data is not loaded.
DicomHeader read_dicom_header(const std::string& path);
// Reads and decodes the whole image.
DicomImage read_dicom(const std::string& path, const ReadOptions& options = {});
// The same for a whole DICOM object held in memory (an upload); `name` stands for the file in messages.
DicomHeader read_dicom_header(std::span<const uint8_t> bytes, const std::string& name);
DicomImage read_dicom(std::span<const uint8_t> bytes, const std::string& name, const ReadOptions& options = {});

// SHA-256 (lower-case hex) of the decoded stored values in a canonical form, independent of transfer
// syntax, byte order, planar configuration and (lossless) compression:
//   Rows, Columns, Samples per Pixel, Number of Frames: four uint32 little-endian;
//   then every frame in order, rows top to bottom, samples interleaved per pixel (R G B R G B ...),
//   each stored value masked to Bits Stored at High Bit and sign-extended when Pixel Representation is 1,
//   written little-endian two's complement in 1 byte (Bits Stored <= 8), 2 bytes (<= 16) or 4 bytes.
// "Decoded" means what the decoder gives: lossy JPEG hashes its decoded output, and JPEG's YCbCr comes out
// RGB (DCMTK converts it); native YBR_FULL_422 is hashed expanded to three samples per pixel; 1-bit
// pixels are unpacked, one byte each.
std::string pixel_hash(const DicomImage& image);

}  // namespace medlab::dicom
