#include "imaging/decode.h"

#include <png.h>
// jpeglib.h needs size_t and FILE declared before it.
#include <cstdio>
#include <cstring>
#include <csetjmp>
#include <jpeglib.h>
#include <jerror.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "core/error.h"
#include "core/mapped_file.h"

namespace medlab {
namespace {

// ---------------------------------------------------------------------------------------------------
// Shared checks and conversions

void check_dimensions(uint64_t width, uint64_t height, const DecodeOptions& options, const std::string& name) {
  if (width == 0 || height == 0) fail(name, ": image has zero width or height (", width, " x ", height, ")");
  const uint64_t pixels = width * height;  // both < 2^32, so no overflow
  if (pixels > options.max_pixels) {
    fail(name, ": image is ", width, " x ", height, " (", pixels, " pixels), more than the limit of ",
         options.max_pixels, " pixels");
  }
}

// The image's EXIF orientation applied when the options ask for it.
Image oriented(Image image, std::span<const uint8_t> exif_tiff, const DecodeOptions& options) {
  if (!options.apply_exif_orientation || exif_tiff.empty()) return image;
  const int orientation = exif_orientation(exif_tiff);
  return orientation == 1 ? image : apply_exif_orientation(image, orientation);
}

// Rows of `channels` samples of 8 bits to RGB: grey is repeated into R, G and B, alpha (channel 2 of
// grey+alpha, 4 of RGBA) is dropped, as Pillow's convert("RGB") drops it.
void samples8_to_rgb(const uint8_t* in, int channels, size_t pixels, uint8_t* out) {
  for (size_t i = 0; i < pixels; ++i, in += channels, out += 3) {
    if (channels <= 2) {
      out[0] = out[1] = out[2] = in[0];
    } else {
      out[0] = in[0];
      out[1] = in[1];
      out[2] = in[2];
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// PNG through libpng. libpng reports a fatal error by longjmp to the setjmp of the function that called
// it. The *_guarded functions below hold no C++ objects with destructors, so the jump skips nothing;
// they return false and the caller turns that into an exception (none is thrown through libpng's frames).

struct PngReader {
  std::span<const uint8_t> bytes;
  size_t position = 0;
  png_structp png = nullptr;
  png_infop info = nullptr;
  char message[256] = "";

  ~PngReader() { png_destroy_read_struct(&png, info ? &info : nullptr, nullptr); }
};

void png_on_error(png_structp png, png_const_charp message) {
  auto* reader = static_cast<PngReader*>(png_get_error_ptr(png));
  std::snprintf(reader->message, sizeof reader->message, "%s", message);
  png_longjmp(png, 1);
}

// Warnings concern ancillary chunks (a bad sRGB profile, a bad CRC in a text chunk); Pillow ignores them too.
void png_on_warning(png_structp, png_const_charp) {}

void png_read_from_memory(png_structp png, png_bytep out, size_t count) {
  auto* reader = static_cast<PngReader*>(png_get_io_ptr(png));
  if (count > reader->bytes.size() - reader->position) png_error(png, "file is truncated");
  std::memcpy(out, reader->bytes.data() + reader->position, count);
  reader->position += count;
}

bool png_read_header_guarded(PngReader& r) {
  if (setjmp(png_jmpbuf(r.png))) return false;
  png_read_info(r.png, r.info);
  return true;
}

// Asks libpng for 8-bit samples, except 16-bit grey which we scale ourselves (Grey16Mode); palettes become
// RGB (or RGBA with tRNS), 1/2/4-bit grey is scaled to 0..255 (as Pillow unpacks it), 16-bit colour
// keeps each sample's high byte (Pillow's "RGB;16B" unpacking does the same). Returns false on error.
bool png_configure_guarded(PngReader& r) {
  if (setjmp(png_jmpbuf(r.png))) return false;
  const int colour_type = png_get_color_type(r.png, r.info);
  const int bit_depth = png_get_bit_depth(r.png, r.info);
  if (colour_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(r.png);
  if ((colour_type & PNG_COLOR_MASK_COLOR) == 0 && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(r.png);
  if ((colour_type & PNG_COLOR_MASK_COLOR) != 0 && bit_depth == 16) png_set_strip_16(r.png);
  png_set_interlace_handling(r.png);
  png_read_update_info(r.png, r.info);
  return true;
}

bool png_read_pixels_guarded(PngReader& r, png_bytepp rows) {
  if (setjmp(png_jmpbuf(r.png))) return false;
  png_read_image(r.png, rows);
  return true;
}

// Reads the chunks after the pixels (an eXIf chunk may be there).
bool png_read_trailer_guarded(PngReader& r) {
  if (setjmp(png_jmpbuf(r.png))) return false;
  png_read_end(r.png, r.info);
  return true;
}

Image decode_png(std::span<const uint8_t> bytes, const DecodeOptions& options, const std::string& name) {
  // Refuse an empty or oversized image from its IHDR, which must be the first chunk, before libpng reads
  // anything; without an IHDR there, libpng reports the file as corrupt.
  static constexpr uint8_t kIhdr[4] = {'I', 'H', 'D', 'R'};
  if (bytes.size() >= 24 && std::equal(kIhdr, kIhdr + 4, bytes.begin() + 12)) {
    const auto be32 = [&](size_t at) {
      return uint32_t(bytes[at]) << 24 | uint32_t(bytes[at + 1]) << 16 | uint32_t(bytes[at + 2]) << 8 | bytes[at + 3];
    };
    check_dimensions(be32(16), be32(20), options, name);
  }

  PngReader r;
  r.bytes = bytes;
  r.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &r, png_on_error, png_on_warning);
  if (!r.png) fail(name, ": cannot start the PNG decoder (out of memory)");
  r.info = png_create_info_struct(r.png);
  if (!r.info) fail(name, ": cannot start the PNG decoder (out of memory)");
  png_set_read_fn(r.png, &r, png_read_from_memory);
  // The size limit is ours (checked above), not libpng's default of 1,000,000 per side.
  png_set_user_limits(r.png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);

  if (!png_read_header_guarded(r)) fail(name, ": corrupt or truncated PNG: ", r.message);
  const uint32_t width = png_get_image_width(r.png, r.info);
  const uint32_t height = png_get_image_height(r.png, r.info);
  if (!png_configure_guarded(r)) fail(name, ": corrupt PNG: ", r.message);
  const int channels = png_get_channels(r.png, r.info);
  const int bit_depth = png_get_bit_depth(r.png, r.info);
  const size_t row_bytes = png_get_rowbytes(r.png, r.info);
  const size_t sample_bytes = bit_depth == 16 ? 2 : 1;
  if (channels < 1 || channels > 4 || (bit_depth != 8 && bit_depth != 16) ||
      row_bytes != size_t(width) * channels * sample_bytes) {
    fail(name, ": unsupported PNG layout (", channels, " channels of ", bit_depth, " bits)");
  }

  std::vector<uint8_t> raw(row_bytes * height);
  std::vector<png_bytep> rows(height);
  for (uint32_t y = 0; y < height; ++y) rows[y] = raw.data() + size_t(y) * row_bytes;
  if (!png_read_pixels_guarded(r, rows.data())) fail(name, ": corrupt or truncated PNG: ", r.message);
  // The pixels are complete; damage after them (a missing IEND, say) only loses a trailing eXIf chunk,
  // and Pillow does not refuse such files either.
  png_read_trailer_guarded(r);

  const size_t pixels = size_t(width) * height;
  Image image;
  if (bit_depth == 8) {
    image = Image{int(width), int(height)};
    samples8_to_rgb(raw.data(), channels, pixels, image.rgb.data());
  } else {  // 16-bit grey or grey+alpha; samples are big-endian
    Grey16Image grey{int(width), int(height)};
    const size_t stride = size_t(channels) * 2;
    for (size_t i = 0; i < pixels; ++i) grey.values[i] = uint16_t(raw[i * stride] << 8 | raw[i * stride + 1]);
    if (options.grey16 == Grey16Mode::ClipLikePillow && channels == 2) {
      // Pillow 9.4 unpacks 16-bit grey+alpha to 8 bits (rawmode "LA;16B"), keeping the high byte; only
      // plain 16-bit grey becomes mode "I", which convert("RGB") clips.
      for (auto& v : grey.values) v >>= 8;
    }
    image = grey16_to_rgb(grey, options.grey16);
  }

  std::span<const uint8_t> exif;
#ifdef PNG_eXIf_SUPPORTED
  png_bytep exif_data = nullptr;
  png_uint_32 exif_size = 0;
  if (png_get_eXIf_1(r.png, r.info, &exif_size, &exif_data) != 0 && exif_data) exif = {exif_data, exif_size};
#endif
  return oriented(std::move(image), exif, options);
}

// ---------------------------------------------------------------------------------------------------
// JPEG through libjpeg-turbo (the library Debian's Pillow uses, with the same default settings: ISLOW
// IDCT, fancy upsampling), so the decoded pixels are identical. Errors longjmp as for PNG above.

struct JpegErrorManager {
  jpeg_error_mgr base;  // first, so libjpeg's pointer to it is a pointer to the whole struct
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

struct JpegReader {
  jpeg_decompress_struct cinfo{};
  JpegErrorManager errors{};
  bool created = false;

  ~JpegReader() {
    if (created) jpeg_destroy_decompress(&cinfo);
  }
};

void jpeg_on_error(j_common_ptr cinfo) {
  auto* errors = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, errors->message);
  std::longjmp(errors->jump, 1);
}

// libjpeg only warns at a premature end of data (and pads the image with grey); like Pillow ("image file
// is truncated") we refuse. Other warnings (extraneous bytes, ...) are tolerated silently, as by Pillow.
void jpeg_on_message(j_common_ptr cinfo, int level) {
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) jpeg_on_error(cinfo);
}

bool jpeg_read_header_guarded(JpegReader& r, std::span<const uint8_t> bytes) {
  r.cinfo.err = jpeg_std_error(&r.errors.base);
  r.errors.base.error_exit = jpeg_on_error;
  r.errors.base.emit_message = jpeg_on_message;
  if (setjmp(r.errors.jump)) return false;
  jpeg_create_decompress(&r.cinfo);
  r.created = true;
  jpeg_mem_src(&r.cinfo, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_save_markers(&r.cinfo, JPEG_APP0 + 1, 0xFFFF);  // APP1 holds EXIF
  jpeg_read_header(&r.cinfo, TRUE);
  return true;
}

// Decodes every scanline into `out`. Stops after the last one without jpeg_finish_decompress, so data
// after the pixels (even a missing EOI) does not matter.
bool jpeg_read_pixels_guarded(JpegReader& r, uint8_t* out, size_t row_bytes) {
  if (setjmp(r.errors.jump)) return false;
  jpeg_start_decompress(&r.cinfo);
  while (r.cinfo.output_scanline < r.cinfo.output_height) {
    JSAMPROW row = out + size_t(r.cinfo.output_scanline) * row_bytes;
    jpeg_read_scanlines(&r.cinfo, &row, 1);
  }
  return true;
}

// Pillow reads every 4-component JPEG as inverted CMYK (rawmode "CMYK;I", the Adobe/Photoshop convention
// that virtually all CMYK JPEGs follow), then converts with r = nk - c * nk / 255, nk = 255 - k, in its
// fixed-point rounding. With the inversion folded in: nk is the stored K, c is 255 - the stored C.
void inverted_cmyk_to_rgb(const uint8_t* in, size_t pixels, uint8_t* out) {
  const auto muldiv255 = [](int a, int b) {
    const int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
  };
  for (size_t i = 0; i < pixels; ++i, in += 4, out += 3) {
    const int nk = in[3];
    for (int c = 0; c < 3; ++c) out[c] = uint8_t(nk - muldiv255(255 - in[c], nk));
  }
}

std::span<const uint8_t> jpeg_exif(const jpeg_decompress_struct& cinfo) {
  static constexpr uint8_t kExifHeader[6] = {'E', 'x', 'i', 'f', 0, 0};
  for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next) {
    // The first Exif APP1 counts, as in Pillow.
    if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 && std::memcmp(m->data, kExifHeader, 6) == 0) {
      return {m->data + 6, m->data_length - 6};
    }
  }
  return {};
}

Image decode_jpeg(std::span<const uint8_t> bytes, const DecodeOptions& options, const std::string& name) {
  JpegReader r;
  if (!jpeg_read_header_guarded(r, bytes)) fail(name, ": corrupt or truncated JPEG: ", r.errors.message);
  check_dimensions(r.cinfo.image_width, r.cinfo.image_height, options, name);

  int channels = 3;
  switch (r.cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
      r.cinfo.out_color_space = JCS_GRAYSCALE;
      channels = 1;
      break;
    case JCS_CMYK:
    case JCS_YCCK:
      r.cinfo.out_color_space = JCS_CMYK;
      channels = 4;
      break;
    default:
      r.cinfo.out_color_space = JCS_RGB;
      break;
  }
  const size_t width = r.cinfo.image_width, height = r.cinfo.image_height;
  const size_t row_bytes = width * size_t(channels);
  std::vector<uint8_t> raw(row_bytes * height);
  if (!jpeg_read_pixels_guarded(r, raw.data(), row_bytes)) {
    fail(name, ": corrupt or truncated JPEG: ", r.errors.message);
  }
  if (r.cinfo.output_width != width || r.cinfo.output_height != height ||
      r.cinfo.output_components != channels) {
    fail(name, ": unexpected JPEG output layout");
  }

  Image image{int(width), int(height)};
  if (channels == 4) {
    inverted_cmyk_to_rgb(raw.data(), width * height, image.rgb.data());
  } else {
    samples8_to_rgb(raw.data(), channels, width * height, image.rgb.data());
  }
  return oriented(std::move(image), jpeg_exif(r.cinfo), options);
}

// ---------------------------------------------------------------------------------------------------
// EXIF: just the Orientation tag (0x0112) of IFD0.

struct TiffReader {
  std::span<const uint8_t> bytes;
  bool little_endian = false;

  std::optional<uint32_t> u16(uint64_t at) const {
    if (at + 2 > bytes.size()) return std::nullopt;
    const uint8_t* p = bytes.data() + at;
    return little_endian ? uint32_t(p[0] | p[1] << 8) : uint32_t(p[0] << 8 | p[1]);
  }
  std::optional<uint32_t> u32(uint64_t at) const {
    if (at + 4 > bytes.size()) return std::nullopt;
    const uint8_t* p = bytes.data() + at;
    return little_endian ? uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24
                         : uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
  }
};

}  // namespace

ImageFormat detect_image_format(std::span<const uint8_t> bytes) {
  static constexpr uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() >= 8 && std::equal(kPng, kPng + 8, bytes.begin())) return ImageFormat::Png;
  if (bytes.size() >= 3 && bytes[0] == 0xff && bytes[1] == 0xd8 && bytes[2] == 0xff) return ImageFormat::Jpeg;
  return ImageFormat::Unknown;
}

std::optional<std::pair<uint32_t, uint32_t>> image_dimensions(std::span<const uint8_t> bytes) {
  const auto be16 = [&](size_t at) { return uint32_t(bytes[at]) << 8 | bytes[at + 1]; };
  switch (detect_image_format(bytes)) {
    case ImageFormat::Png:  // IHDR is the first chunk: width and height at bytes 16..23
      if (bytes.size() < 24) return std::nullopt;
      return std::pair{be16(16) << 16 | be16(18), be16(20) << 16 | be16(22)};
    case ImageFormat::Jpeg:  // the first start-of-frame segment (SOF0..SOF15 less DHT, JPG and DAC)
      for (size_t at = 2; at + 9 <= bytes.size();) {
        const uint8_t marker = bytes[at + 1];
        // As libjpeg: stray bytes, fill bytes and FF 00 are skipped; TEM and RSTn stand alone (no length).
        if (bytes[at] != 0xff || marker == 0xff || marker == 0x00) {
          ++at;
          continue;
        }
        if (marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
          at += 2;
          continue;
        }
        if (marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc)
          return std::pair{be16(at + 7), be16(at + 5)};
        at += 2 + be16(at + 2);
      }
      return std::nullopt;
    case ImageFormat::Unknown:
      break;
  }
  return std::nullopt;
}

Image decode_image(std::span<const uint8_t> bytes, const DecodeOptions& options, const std::string& name_for_errors) {
  switch (detect_image_format(bytes)) {
    case ImageFormat::Png:
      return decode_png(bytes, options, name_for_errors);
    case ImageFormat::Jpeg:
      return decode_jpeg(bytes, options, name_for_errors);
    case ImageFormat::Unknown:
      break;
  }
  if (bytes.empty()) fail(name_for_errors, ": empty file, not a PNG or JPEG image");
  fail(name_for_errors, ": not a PNG or JPEG image");
}

Image decode_image_file(const std::filesystem::path& path, const DecodeOptions& options) {
  const MappedFile file(path.string());
  return decode_image({file.data(), file.size()}, options, path.string());
}

Image grey16_to_rgb(const Grey16Image& grey, Grey16Mode mode) {
  Image image(grey.width, grey.height);
  const auto [lowest, highest] = std::minmax_element(grey.values.begin(), grey.values.end());
  const uint64_t low = lowest == grey.values.end() ? 0 : *lowest;
  const uint64_t range = lowest == grey.values.end() ? 0 : *highest - low;
  uint8_t* out = image.rgb.data();
  for (const uint16_t v : grey.values) {
    uint8_t g;
    if (mode == Grey16Mode::ClipLikePillow) {
      g = uint8_t(std::min<uint32_t>(v, 255));
    } else if (range == 0) {
      g = uint8_t(v >> 8);
    } else {  // round((v - low) * 255 / range), halves up
      g = uint8_t(((v - low) * 510 + range) / (2 * range));
    }
    out[0] = out[1] = out[2] = g;
    out += 3;
  }
  return image;
}

int exif_orientation(std::span<const uint8_t> tiff) {
  TiffReader t{tiff};
  if (tiff.size() < 8) return 1;
  if (tiff[0] == 'I' && tiff[1] == 'I') {
    t.little_endian = true;
  } else if (!(tiff[0] == 'M' && tiff[1] == 'M')) {
    return 1;
  }
  if (t.u16(2) != 42u) return 1;
  const auto ifd = t.u32(4);
  const auto count = ifd ? t.u16(*ifd) : std::nullopt;
  if (!count) return 1;
  for (uint64_t i = 0; i < *count; ++i) {
    const uint64_t entry = uint64_t(*ifd) + 2 + 12 * i;
    const auto tag = t.u16(entry), type = t.u16(entry + 2);
    if (!tag || !type) return 1;
    if (*tag != 0x0112) continue;
    // SHORT (3) as the standard says; LONG (4) seen in the wild. The value sits in the entry itself.
    const auto value = *type == 3 ? t.u16(entry + 8) : *type == 4 ? t.u32(entry + 8) : std::nullopt;
    return value && *value >= 1 && *value <= 8 ? int(*value) : 1;
  }
  return 1;
}

Image apply_exif_orientation(const Image& image, int orientation) {
  if (orientation < 2 || orientation > 8) return image;
  const int w = image.width, h = image.height;
  const bool swaps = orientation >= 5;  // 5..8 turn by a quarter, exchanging width and height
  Image out(swaps ? h : w, swaps ? w : h);
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      int sx = x, sy = y;  // the source pixel shown at (x, y)
      switch (orientation) {
        case 2: sx = w - 1 - x; break;                        // mirrored
        case 3: sx = w - 1 - x; sy = h - 1 - y; break;        // upside down
        case 4: sy = h - 1 - y; break;                        // flipped vertically
        case 5: sx = y; sy = x; break;                        // transposed
        case 6: sx = y; sy = h - 1 - x; break;                // turn 90 degrees clockwise to view
        case 7: sx = w - 1 - y; sy = h - 1 - x; break;        // transversed
        case 8: sx = w - 1 - y; sy = x; break;                // turn 90 degrees anticlockwise to view
      }
      std::memcpy(out.pixel(x, y), image.pixel(sx, sy), 3);
    }
  }
  return out;
}

}  // namespace medlab
