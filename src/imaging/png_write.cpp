// libpng's simplified API needs no setjmp error handling; it reports failures in image.message.
#include "imaging/png_write.h"

#include <png.h>

#include "core/error.h"

namespace medlab {

namespace {

png_image describe(const std::string& what, uint32_t width, uint32_t height, uint32_t channels) {
  if (channels != 1 && channels != 3) fail(what, ": PNG output needs 1 or 3 channels, not ", channels);
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = width;
  image.height = height;
  image.format = channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  image.flags = PNG_IMAGE_FLAG_FAST;  // zlib's fast setting: files ~10% larger, written several times faster
  return image;
}

}  // namespace

void write_png(const std::string& path, uint32_t width, uint32_t height, uint32_t channels, const uint8_t* pixels) {
  png_image image = describe(path, width, height, channels);
  if (!png_image_write_to_file(&image, path.c_str(), 0, pixels, 0, nullptr)) {
    fail(path, ": cannot write PNG: ", image.message);
  }
  png_image_free(&image);
}

std::vector<uint8_t> encode_png(uint32_t width, uint32_t height, uint32_t channels, const uint8_t* pixels) {
  png_image image = describe("PNG encoder", width, height, channels);
  png_alloc_size_t size = 0;  // a first call with no buffer measures
  if (!png_image_write_to_memory(&image, nullptr, &size, 0, pixels, 0, nullptr)) fail("PNG encoder: ", image.message);
  std::vector<uint8_t> out(size);
  if (!png_image_write_to_memory(&image, out.data(), &size, 0, pixels, 0, nullptr)) fail("PNG encoder: ", image.message);
  png_image_free(&image);
  out.resize(size);
  return out;
}

}  // namespace medlab
