// Pixel data to stored values: size checks before anything is allocated, DCMTK's decoders (or OpenJPEG),
// then one layout (interleaved, little-endian); plus the encoding-independent pixel hash.
#include <dcmtk/dcmdata/dccodec.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <bit>
#include <cstring>
#include <memory>

#include "core/error.h"
#include "core/sha256.h"
#include "imaging/dicom_file.h"
#include "imaging/dicom_internal.h"

namespace medlab::dicom {
namespace {

static_assert(std::endian::native == std::endian::little, "decoded pixels are kept little-endian in memory");

// Bytes per decoded sample: 1-bit (bit-packed) pixels are unpacked to bytes.
int container_bytes(const DicomHeader& h) { return h.bits_allocated == 1 ? 1 : h.bits_allocated / 8; }

bool is_jpeg2000(E_TransferSyntax xfer) { return xfer == EXS_JPEG2000LosslessOnly || xfer == EXS_JPEG2000; }

// Decoded bytes of all frames, or fails naming the limit, before any allocation.
uint64_t decoded_size(const DicomHeader& h, const ReadOptions& options) {
  const unsigned __int128 size = (unsigned __int128)h.rows * h.columns * h.samples_per_pixel * h.frames * container_bytes(h);
  if (size > options.max_pixel_bytes) {
    fail(h.file_name, ": (0028,0010) Rows ", h.rows, " x (0028,0011) Columns ", h.columns, " x ", h.samples_per_pixel,
         " samples x (0028,0008) ", h.frames, " frames x ", container_bytes(h), " bytes is over the ",
         options.max_pixel_bytes >> 20, " MiB limit on decoded pixel data");
  }
  return uint64_t(size);
}

// Colour-by-plane frames to colour-by-pixel.
void interleave_planes(const DicomHeader& h, PixelData& p) {
  const size_t pixels = size_t(h.rows) * h.columns;
  const size_t b = size_t(p.bytes_per_sample);
  std::vector<uint8_t> out(p.bytes.size());
  for (size_t f = 0; f < h.frames; ++f) {
    const uint8_t* in = p.bytes.data() + f * pixels * 3 * b;
    uint8_t* dst = out.data() + f * pixels * 3 * b;
    for (size_t i = 0; i < pixels; ++i) {
      for (size_t s = 0; s < 3; ++s) std::memcpy(dst + (i * 3 + s) * b, in + (s * pixels + i) * b, b);
    }
  }
  p.bytes = std::move(out);
}

// Native YBR_FULL_422 keeps one Cb and Cr for each pair of pixels (Y1 Y2 Cb Cr): repeat them for both.
std::vector<uint8_t> expand_422(const DicomHeader& h, const uint8_t* in, size_t b) {
  const size_t pixels = size_t(h.rows) * h.columns;
  std::vector<uint8_t> out(pixels * 3 * b * h.frames);
  uint8_t* dst = out.data();
  for (size_t pair = 0; pair < pixels / 2 * h.frames; ++pair, in += 4 * b) {
    for (int k = 0; k < 2; ++k) {
      std::memcpy(dst, in + k * b, b);
      std::memcpy(dst + b, in + 2 * b, 2 * b);
      dst += 3 * b;
    }
  }
  return out;
}

// The decoded (native) Pixel Data element's bytes in little-endian order.
void copy_native(DcmDataset& dataset, E_TransferSyntax original, const DicomHeader& h, uint64_t needed, PixelData& p) {
  DcmElement* element = nullptr;
  if (dataset.findAndGetElement(DCM_PixelData, element).bad() || element == nullptr) {
    fail(h.file_name, ": (7FE0,0010) Pixel Data is missing");
  }
  const uint64_t length = element->getLength();
  if (length < needed) {
    fail(h.file_name, ": (7FE0,0010) Pixel Data has ", length, " bytes; Rows x Columns x samples x frames x bits needs ",
         needed, " (truncated or inconsistent)");
  }
  const void* data = nullptr;
  OFCondition status;
  if (h.bits_allocated <= 8) {
    Uint8* bytes = nullptr;
    status = element->getUint8Array(bytes);
    data = bytes;
  } else {
    Uint16* words = nullptr;  // DCMTK swaps OW words to this machine's order
    status = element->getUint16Array(words);
    data = words;
  }
  if (status.bad() || data == nullptr) fail(h.file_name, ": (7FE0,0010) Pixel Data cannot be read: ", status.text(), " (truncated file?)");
  p.bytes.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + needed);
  if (h.bits_allocated == 32 && DcmXfer(original).isBigEndian()) {
    // DCMTK swapped each 16-bit word; a big-endian 32-bit value also has its halves in the wrong order.
    for (size_t i = 0; i + 4 <= p.bytes.size(); i += 4) {
      std::swap(p.bytes[i], p.bytes[i + 2]);
      std::swap(p.bytes[i + 1], p.bytes[i + 3]);
    }
  }
}

// Decodes the pixel data of a parsed object into stored values.
DicomImage decode_loaded(LoadedFile loaded, const ReadOptions& options) {
  DicomImage image;
  DicomHeader& h = loaded.header;
  DcmDataset& dataset = *loaded.file->getDataset();
  const DcmXfer xfer(loaded.xfer);
  const bool encapsulated = xfer.isEncapsulated();
  if (DcmXfer(h.transfer_syntax_uid.c_str()).getXfer() == EXS_Unknown) {
    fail(h.file_name, ": transfer syntax ", h.transfer_syntax_uid, " (unknown to DCMTK) is not supported");
  }
  if (encapsulated && !is_jpeg2000(loaded.xfer) && !DcmCodecList::canChangeCoding(loaded.xfer, EXS_LittleEndianExplicit)) {
    fail(h.file_name, ": transfer syntax ", h.transfer_syntax_uid, " (", h.transfer_syntax_name, ") is not supported");
  }
  if (!dataset.tagExists(DCM_PixelData)) fail(h.file_name, ": (7FE0,0010) Pixel Data is missing");
  decoded_size(h, options);
  image.pixels.bytes_per_sample = container_bytes(h);
  const size_t b = size_t(image.pixels.bytes_per_sample);
  const uint64_t pixels = uint64_t(h.rows) * h.columns * h.frames;

  if (is_jpeg2000(loaded.xfer)) {
    decode_jpeg2000(dataset, h, image.pixels);
    // The codestream's colour transform is undone by the decoder: YBR_ICT / YBR_RCT come out RGB.
    if (h.photometric == "YBR_ICT" || h.photometric == "YBR_RCT") h.photometric = "RGB";
  } else if (encapsulated) {
    const OFCondition status = dataset.chooseRepresentation(EXS_LittleEndianExplicit, nullptr);
    if (status.bad() || !dataset.canWriteXfer(EXS_LittleEndianExplicit)) {
      fail(h.file_name, ": cannot decode ", h.transfer_syntax_name, " pixel data: ", status.text());
    }
    read_image_attributes(dataset, h);  // the decoder may have turned YBR into RGB, or planes into pixels
    decoded_size(h, options);
    copy_native(dataset, EXS_LittleEndianExplicit, h, pixels * h.samples_per_pixel * b, image.pixels);
    if (h.samples_per_pixel == 3 && h.planar_configuration == 1) interleave_planes(h, image.pixels);
  } else if (h.bits_allocated == 1) {
    // Bit-packed (segmentations, overlays-as-images): one bit per sample, least significant bit first,
    // frames following on without padding.
    const uint64_t count = pixels * h.samples_per_pixel;
    PixelData packed;
    copy_native(dataset, loaded.xfer, h, (count + 7) / 8, packed);
    image.pixels.bytes.resize(count);
    for (uint64_t i = 0; i < count; ++i) image.pixels.bytes[i] = (packed.bytes[i / 8] >> (i % 8)) & 1;
  } else if (h.photometric == "YBR_FULL_422") {
    if (h.columns % 2 != 0) fail(h.file_name, ": (0028,0011) Columns is odd for YBR_FULL_422");
    PixelData packed;
    copy_native(dataset, loaded.xfer, h, pixels * 2 * b, packed);
    image.pixels.bytes = expand_422(h, packed.bytes.data(), b);
  } else {
    copy_native(dataset, loaded.xfer, h, pixels * h.samples_per_pixel * b, image.pixels);
    if (h.samples_per_pixel == 3 && h.planar_configuration == 1) interleave_planes(h, image.pixels);
  }
  image.header = std::move(h);
  return image;
}

}  // namespace

DicomImage read_dicom(const std::string& path, const ReadOptions& options) {
  return decode_loaded(load_file(path, false), options);
}

DicomImage read_dicom(std::span<const uint8_t> bytes, const std::string& name, const ReadOptions& options) {
  return decode_loaded(load_buffer(bytes, name, false), options);
}

std::string pixel_hash(const DicomImage& image) {
  const DicomHeader& h = image.header;
  const int width = h.bits_stored <= 8 ? 1 : h.bits_stored <= 16 ? 2 : 4;
  Sha256 sha;
  uint8_t head[16];
  const uint32_t fields[4] = {h.rows, h.columns, h.samples_per_pixel, h.frames};
  for (int i = 0; i < 4; ++i) {
    for (int k = 0; k < 4; ++k) head[i * 4 + k] = uint8_t(fields[i] >> (8 * k));
  }
  sha.update(head, sizeof head);
  std::vector<uint8_t> chunk;
  const size_t per_frame = image.samples_per_frame();
  for (uint32_t f = 0; f < h.frames; ++f) {
    chunk.resize(per_frame * width);
    for (size_t i = 0; i < per_frame; ++i) {
      const uint64_t v = uint64_t(image.stored(f, i));
      for (int k = 0; k < width; ++k) chunk[i * width + k] = uint8_t(v >> (8 * k));
    }
    sha.update(chunk.data(), chunk.size());
  }
  return sha.hex_digest();
}

}  // namespace medlab::dicom
