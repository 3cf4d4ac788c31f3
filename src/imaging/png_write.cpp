// libpng's simplified API needs no setjmp error handling; it reports failures in image.message.
#include "imaging/png_write.h"

#include <png.h>

#include "core/error.h"

namespace medlab {

void write_png(const std::string& path, uint32_t width, uint32_t height, uint32_t channels, const uint8_t* pixels) {
  if (channels != 1 && channels != 3) fail(path, ": PNG output needs 1 or 3 channels, not ", channels);
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = width;
  image.height = height;
  image.format = channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  image.flags = PNG_IMAGE_FLAG_FAST;  // zlib's fast setting: files ~10% larger, written several times faster
  if (!png_image_write_to_file(&image, path.c_str(), 0, pixels, 0, nullptr)) {
    fail(path, ": cannot write PNG: ", image.message);
  }
  png_image_free(&image);
}

}  // namespace medlab
