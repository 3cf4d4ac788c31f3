// Decoding: errors and limits, 16-bit grey modes, JPEG round trips, EXIF. Pixel-exact agreement with
// Pillow over many layouts is tests/parity/pillow_parity_test.cpp's job.
#include "imaging/decode.h"

#include <gtest/gtest.h>
#include <jpeglib.h>
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"

namespace medlab {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

// --- writers for test inputs ---

void put32(Bytes& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(uint8_t(v >> shift));
}

void put_chunk(Bytes& out, const char* type, const Bytes& data) {
  put32(out, uint32_t(data.size()));
  Bytes body(type, type + 4);
  body.insert(body.end(), data.begin(), data.end());
  out.insert(out.end(), body.begin(), body.end());
  put32(out, uint32_t(crc32(0, body.data(), uInt(body.size()))));
}

Bytes ihdr(uint32_t width, uint32_t height, uint8_t bit_depth, uint8_t colour_type) {
  Bytes data;
  put32(data, width);
  put32(data, height);
  data.insert(data.end(), {bit_depth, colour_type, 0, 0, 0});
  return data;
}

// A non-interlaced PNG whose scanlines (without filter bytes) are `rows`.
Bytes png(uint32_t width, uint32_t height, uint8_t bit_depth, uint8_t colour_type, const std::vector<Bytes>& rows) {
  Bytes out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  put_chunk(out, "IHDR", ihdr(width, height, bit_depth, colour_type));
  Bytes filtered;
  for (const Bytes& row : rows) {
    filtered.push_back(0);
    filtered.insert(filtered.end(), row.begin(), row.end());
  }
  Bytes compressed(compressBound(uLong(filtered.size())));
  uLongf size = compressed.size();
  compress(compressed.data(), &size, filtered.data(), uLong(filtered.size()));
  compressed.resize(size);
  put_chunk(out, "IDAT", compressed);
  put_chunk(out, "IEND", {});
  return out;
}

Bytes grey16_png(uint32_t width, const std::vector<uint16_t>& values) {
  std::vector<Bytes> rows;
  for (size_t i = 0; i < values.size(); i += width) {
    Bytes row;
    for (size_t x = 0; x < width; ++x) row.insert(row.end(), {uint8_t(values[i + x] >> 8), uint8_t(values[i + x])});
    rows.push_back(row);
  }
  return png(width, uint32_t(values.size() / width), 16, 0, rows);
}

Bytes rgb_png(const Image& image) {
  std::vector<Bytes> rows;
  for (int y = 0; y < image.height; ++y) rows.emplace_back(image.pixel(0, y), image.pixel(0, y) + image.width * 3);
  return png(uint32_t(image.width), uint32_t(image.height), 8, 2, rows);
}

// A JPEG of `image` (greyscale when `grey`), with an APP1 segment when `app1` is not empty.
Bytes jpeg(const Image& image, bool progressive, bool grey = false, const Bytes& app1 = {}) {
  jpeg_compress_struct cinfo{};
  jpeg_error_mgr errors{};
  cinfo.err = jpeg_std_error(&errors);
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = JDIMENSION(image.width);
  cinfo.image_height = JDIMENSION(image.height);
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&cinfo);
  if (grey) jpeg_set_colorspace(&cinfo, JCS_GRAYSCALE);
  jpeg_set_quality(&cinfo, 95, TRUE);
  if (progressive) jpeg_simple_progression(&cinfo);
  jpeg_start_compress(&cinfo, TRUE);
  if (!app1.empty()) jpeg_write_marker(&cinfo, JPEG_APP0 + 1, app1.data(), unsigned(app1.size()));
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(image.pixel(0, int(cinfo.next_scanline)));
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  Bytes out(buffer, buffer + size);
  std::free(buffer);
  return out;
}

// Left half red, right half blue: orientation and colour survive JPEG's losses.
Image red_blue(int width, int height) {
  Image image(width, height);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      uint8_t* p = image.pixel(x, y);
      p[0] = x < width / 2 ? 220 : 20;
      p[2] = x < width / 2 ? 20 : 220;
    }
  }
  return image;
}

// Pseudo-random pixels: JPEG cannot shrink them much, so a cut lands inside the scan data.
Image noise(int width, int height) {
  Image image(width, height);
  uint32_t state = 12345;
  for (uint8_t& v : image.rgb) v = uint8_t((state = state * 1664525u + 1013904223u) >> 24);
  return image;
}

fs::path write_file(const std::string& name, const Bytes& bytes) {
  const fs::path dir = fs::path(MEDLAB_BINARY_DIR) / "decode_test";
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  return dir / name;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::string decode_error(const Bytes& bytes, const std::string& name, const DecodeOptions& options = {}) {
  return error_of([&] { decode_image(bytes, options, name); });
}

// An EXIF block (TIFF structure) with one IFD0 entry: tag, type, count 1, value.
Bytes tiff(bool little_endian, uint16_t tag, uint16_t type, uint32_t value) {
  Bytes out;
  const auto u16 = [&](uint32_t v) {
    if (little_endian) out.insert(out.end(), {uint8_t(v), uint8_t(v >> 8)});
    else out.insert(out.end(), {uint8_t(v >> 8), uint8_t(v)});
  };
  const auto u32 = [&](uint32_t v) {
    if (little_endian) out.insert(out.end(), {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)});
    else out.insert(out.end(), {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)});
  };
  out.insert(out.end(), little_endian ? std::initializer_list<uint8_t>{'I', 'I'} : std::initializer_list<uint8_t>{'M', 'M'});
  u16(42);
  u32(8);  // IFD0 right after the header
  u16(1);  // one entry
  u16(tag);
  u16(type);
  u32(1);
  if (type == 3) {
    u16(value);
    u16(0);
  } else {
    u32(value);
  }
  u32(0);  // no next IFD
  return out;
}

Bytes exif_app1(const Bytes& tiff_block) {
  Bytes out = {'E', 'x', 'i', 'f', 0, 0};
  out.insert(out.end(), tiff_block.begin(), tiff_block.end());
  return out;
}

// --- format detection and errors ---

TEST(Decode, DetectsTheFormatByMagicBytesNotByName) {
  const fs::path text = write_file("x.png", Bytes{'h', 'e', 'l', 'l', 'o', '\n'});
  EXPECT_EQ(error_of([&] { decode_image_file(text); }), text.string() + ": not a PNG or JPEG image");
  const fs::path empty = write_file("empty.jpg", {});
  EXPECT_EQ(error_of([&] { decode_image_file(empty); }), empty.string() + ": empty file, not a PNG or JPEG image");

  const Image image = red_blue(4, 2);
  EXPECT_EQ(decode_image_file(write_file("png-named.jpg", rgb_png(image))).rgb, image.rgb);
  EXPECT_EQ(decode_image_file(write_file("jpeg-named.png", jpeg(image, false))).width, 4);
  EXPECT_EQ(detect_image_format(rgb_png(image)), ImageFormat::Png);
  EXPECT_EQ(detect_image_format(jpeg(image, false)), ImageFormat::Jpeg);
}

TEST(Decode, NamesAMissingFile) {
  EXPECT_NE(error_of([] { decode_image_file("/nonexistent/scan.png"); }).find("/nonexistent/scan.png: cannot open"),
            std::string::npos);
}

TEST(Decode, RefusesAHugePngFromItsHeader) {
  Bytes huge = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  put_chunk(huge, "IHDR", ihdr(50000, 50000, 8, 2));
  put_chunk(huge, "IEND", {});
  ASSERT_LT(huge.size(), 64u);
  EXPECT_EQ(decode_error(huge, "huge.png"),
            "huge.png: image is 50000 x 50000 (2500000000 pixels), more than the limit of 100000000 pixels");
}

TEST(Decode, MaxPixelsIsSettable) {
  const Bytes bytes = rgb_png(red_blue(100, 100));
  DecodeOptions options;
  options.max_pixels = 9999;
  EXPECT_NE(decode_error(bytes, "a.png", options).find("more than the limit of 9999 pixels"), std::string::npos);
  options.max_pixels = 10000;
  EXPECT_EQ(decode_image(bytes, options, "a.png").width, 100);

  const Bytes jpeg_bytes = jpeg(red_blue(100, 100), true);
  options.max_pixels = 9999;
  EXPECT_NE(decode_error(jpeg_bytes, "a.jpg", options).find("a.jpg: image is 100 x 100"), std::string::npos);
}

TEST(Decode, DimensionsFromTheHeaderAlone) {
  using Size = std::optional<std::pair<uint32_t, uint32_t>>;
  EXPECT_EQ(image_dimensions(rgb_png(red_blue(7, 3))), Size({7, 3}));
  for (bool progressive : {false, true}) EXPECT_EQ(image_dimensions(jpeg(red_blue(33, 17), progressive)), Size({33, 17}));
  Bytes huge = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  put_chunk(huge, "IHDR", ihdr(50000, 40000, 8, 2));
  EXPECT_EQ(image_dimensions(huge), Size({50000, 40000}));  // no pixel data needed
  EXPECT_EQ(image_dimensions(Bytes{0xff, 0xd8, 0xff, 0xe0, 0x00}), std::nullopt);  // truncated before a frame header
  EXPECT_EQ(image_dimensions(Bytes{'h', 'e', 'l', 'l', 'o'}), std::nullopt);
  // Found by fuzzing: libjpeg skips stray bytes between segments, so the header scan must too.
  Bytes stray = jpeg(red_blue(33, 17), false);
  const size_t after_app0 = 4 + (size_t(stray[4]) << 8 | stray[5]);
  stray.insert(stray.begin() + ptrdiff_t(after_app0), {0x12, 0xff, 0x00, 0x34});
  EXPECT_EQ(decode_image(stray, {}, "stray.jpg").width, 33);
  EXPECT_EQ(image_dimensions(stray), Size({33, 17}));
}

TEST(Decode, RefusesAZeroSizedPng) {
  Bytes zero = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  put_chunk(zero, "IHDR", ihdr(0, 10, 8, 2));
  put_chunk(zero, "IEND", {});
  EXPECT_EQ(decode_error(zero, "zero.png"), "zero.png: image has zero width or height (0 x 10)");
}

TEST(Decode, RefusesTruncatedAndCorruptPngs) {
  const Bytes good = rgb_png(noise(64, 64));
  ASSERT_EQ(decode_image(good, {}, "good.png").width, 64);
  for (size_t cut : {size_t(8), size_t(20), size_t(40), good.size() / 2, good.size() - 20}) {
    const Bytes truncated(good.begin(), good.begin() + std::ptrdiff_t(cut));
    const std::string error = decode_error(truncated, "cut.png");
    EXPECT_EQ(error.rfind("cut.png: corrupt or truncated PNG: ", 0), 0u) << "cut at " << cut << ": " << error;
  }
  Bytes corrupt = good;
  corrupt[good.size() / 2] ^= 0x55;  // inside IDAT: its CRC no longer matches
  EXPECT_EQ(decode_error(corrupt, "crc.png").rfind("crc.png: corrupt or truncated PNG: ", 0), 0u);

  // Complete pixels without the IEND chunk decode, as in Pillow.
  const Bytes no_end(good.begin(), good.end() - 12);
  EXPECT_EQ(decode_image(no_end, {}, "no-end.png").rgb, decode_image(good, {}, "good.png").rgb);
}

TEST(Decode, RefusesTruncatedAndCorruptJpegs) {
  for (bool progressive : {false, true}) {
    const Bytes good = jpeg(noise(64, 64), progressive);
    ASSERT_EQ(decode_image(good, {}, "good.jpg").width, 64);
    for (size_t cut : {size_t(3), size_t(100), good.size() / 2, good.size() - 100}) {
      const Bytes truncated(good.begin(), good.begin() + std::ptrdiff_t(cut));
      const std::string error = decode_error(truncated, "cut.jpg");
      EXPECT_EQ(error.rfind("cut.jpg: corrupt or truncated JPEG: ", 0), 0u)
          << (progressive ? "progressive" : "baseline") << ", cut at " << cut << ": " << error;
    }
  }
  const Bytes garbage = {0xff, 0xd8, 0xff, 0x00, 0x12, 0x34, 0x56};
  EXPECT_EQ(decode_error(garbage, "garbage.jpg").rfind("garbage.jpg: corrupt or truncated JPEG: ", 0), 0u);
}

// --- pixels ---

TEST(Decode, DropsAlphaWithoutCompositing) {
  // RGBA (10, 20, 30, 0) and grey+alpha (77, 0): Pillow's convert("RGB") keeps the colour, ignores alpha.
  const Bytes rgba = png(1, 1, 8, 6, {{10, 20, 30, 0}});
  EXPECT_EQ(decode_image(rgba, {}, "rgba.png").rgb, (Bytes{10, 20, 30}));
  const Bytes grey_alpha = png(1, 1, 8, 4, {{77, 0}});
  EXPECT_EQ(decode_image(grey_alpha, {}, "la.png").rgb, (Bytes{77, 77, 77}));
}

TEST(Decode, Grey16FullRangeStretchesMinToMax) {
  const Bytes bytes = grey16_png(4, {1000, 1500, 2000, 3000});
  DecodeOptions options;
  ASSERT_EQ(options.grey16, Grey16Mode::FullRange);
  // (v - 1000) * 255 / 2000, rounded half up: 0, 63.75, 127.5, 255.
  EXPECT_EQ(decode_image(bytes, options, "xray.png").rgb, (Bytes{0, 0, 0, 64, 64, 64, 128, 128, 128, 255, 255, 255}));
  // A constant image keeps its high byte.
  EXPECT_EQ(decode_image(grey16_png(1, {0x1234}), options, "flat.png").rgb, (Bytes{0x12, 0x12, 0x12}));
}

TEST(Decode, Grey16ClipLikePillowWhitensEverythingAbove255) {
  DecodeOptions options;
  options.grey16 = Grey16Mode::ClipLikePillow;
  EXPECT_EQ(decode_image(grey16_png(4, {0, 200, 256, 3000}), options, "xray.png").rgb,
            (Bytes{0, 0, 0, 200, 200, 200, 255, 255, 255, 255, 255, 255}));
}

TEST(Decode, Grey16ToRgbOfAnEmptyImage) {
  EXPECT_TRUE(grey16_to_rgb(Grey16Image{}, Grey16Mode::FullRange).rgb.empty());
}

TEST(Decode, JpegBaselineProgressiveAndGreyRoundTrip) {
  const Image image = red_blue(32, 16);
  for (bool progressive : {false, true}) {
    const Image decoded = decode_image(jpeg(image, progressive), {}, "rb.jpg");
    ASSERT_EQ(decoded.width, 32);
    ASSERT_EQ(decoded.height, 16);
    for (int y = 0; y < 16; ++y) {
      for (int x = 0; x < 32; ++x) {
        if (std::abs(x - 16) < 3) continue;  // chroma subsampling blurs the red/blue edge
        for (int c = 0; c < 3; ++c) EXPECT_NEAR(decoded.pixel(x, y)[c], image.pixel(x, y)[c], 12) << x << "," << y;
      }
    }
  }
  const Image grey = decode_image(jpeg(image, false, true), {}, "grey.jpg");
  for (size_t i = 0; i < grey.rgb.size(); i += 3) {
    EXPECT_EQ(grey.rgb[i], grey.rgb[i + 1]);
    EXPECT_EQ(grey.rgb[i], grey.rgb[i + 2]);
  }
}

// --- EXIF ---

TEST(Exif, ReadsTheOrientationTag) {
  EXPECT_EQ(exif_orientation(tiff(true, 0x0112, 3, 6)), 6);
  EXPECT_EQ(exif_orientation(tiff(false, 0x0112, 3, 8)), 8);
  EXPECT_EQ(exif_orientation(tiff(true, 0x0112, 4, 3)), 3);    // LONG instead of SHORT
  EXPECT_EQ(exif_orientation(tiff(true, 0x0112, 3, 9)), 1);    // out of range
  EXPECT_EQ(exif_orientation(tiff(true, 0x0110, 3, 6)), 1);    // another tag
  EXPECT_EQ(exif_orientation(tiff(false, 0x0112, 2, 6)), 1);   // ASCII: not a number
  EXPECT_EQ(exif_orientation({}), 1);
}

TEST(Exif, SurvivesMalformedBlocks) {
  const Bytes good = tiff(true, 0x0112, 3, 6);
  for (size_t n = 0; n < good.size(); ++n) {
    const int orientation = exif_orientation(std::span(good.data(), n));  // every truncation
    EXPECT_TRUE(orientation == 1 || orientation == 6) << n;
  }
  Bytes far_ifd = good;
  far_ifd[4] = far_ifd[5] = far_ifd[6] = far_ifd[7] = 0xff;  // IFD0 at offset 4 GiB
  EXPECT_EQ(exif_orientation(far_ifd), 1);
  Bytes many_entries = tiff(true, 0x0110, 3, 6);
  many_entries[8] = many_entries[9] = 0xff;  // 65535 entries in a 26-byte block, none the orientation
  EXPECT_EQ(exif_orientation(many_entries), 1);
  Bytes bad_magic = good;
  bad_magic[2] = 43;
  EXPECT_EQ(exif_orientation(bad_magic), 1);
}

TEST(Exif, OrientationIsAppliedAsAViewerDoes) {
  // 3 x 2 pixels numbered 0..5 in reading order (in their red channel).
  Image image(3, 2);
  for (int i = 0; i < 6; ++i) image.rgb[size_t(i) * 3] = uint8_t(i);
  const auto reds = [](const Image& im) {
    Bytes out;
    for (size_t i = 0; i < im.rgb.size(); i += 3) out.push_back(im.rgb[i]);
    return out;
  };
  const std::vector<std::tuple<int, int, Bytes>> expected = {
      {1, 3, {0, 1, 2, 3, 4, 5}}, {2, 3, {2, 1, 0, 5, 4, 3}}, {3, 3, {5, 4, 3, 2, 1, 0}},
      {4, 3, {3, 4, 5, 0, 1, 2}}, {5, 2, {0, 3, 1, 4, 2, 5}}, {6, 2, {3, 0, 4, 1, 5, 2}},
      {7, 2, {5, 2, 4, 1, 3, 0}}, {8, 2, {2, 5, 1, 4, 0, 3}}};
  for (const auto& [orientation, width, pixels] : expected) {
    const Image turned = apply_exif_orientation(image, orientation);
    EXPECT_EQ(turned.width, width) << orientation;
    EXPECT_EQ(reds(turned), pixels) << orientation;
  }
}

TEST(Exif, JpegOrientationIsAppliedUnlessDisabled) {
  // Orientation 6: turn 90 degrees clockwise to view, so the red left half ends on top.
  const Bytes bytes = jpeg(red_blue(32, 16), false, false, exif_app1(tiff(false, 0x0112, 3, 6)));
  const Image viewed = decode_image(bytes, {}, "turned.jpg");
  ASSERT_EQ(viewed.width, 16);
  ASSERT_EQ(viewed.height, 32);
  EXPECT_GT(viewed.pixel(8, 4)[0], 180);
  EXPECT_GT(viewed.pixel(8, 28)[2], 180);

  DecodeOptions options;
  options.apply_exif_orientation = false;
  const Image stored = decode_image(bytes, options, "turned.jpg");
  EXPECT_EQ(stored.width, 32);
  EXPECT_EQ(stored.height, 16);
}

TEST(Exif, MalformedExifInAJpegIsIgnored) {
  Bytes broken = exif_app1(tiff(true, 0x0112, 3, 6));
  broken.resize(broken.size() - 12);  // the entry's value is cut off
  const Image image = decode_image(jpeg(red_blue(32, 16), false, false, broken), {}, "broken-exif.jpg");
  EXPECT_EQ(image.width, 32);
}

}  // namespace
}  // namespace medlab
