#include "imaging/library_versions.h"

#include <png.h>
#include <zlib.h>

#include <cstdio>
#include <jpeglib.h>

namespace medlab {

LibraryVersions image_library_versions() {
  // libjpeg-turbo has no run-time version call (its libjpeg API reports "6b" whatever the release): the
  // headers' number, 2001005 for 2.1.5, is all there is.
  const int jpeg = LIBJPEG_TURBO_VERSION_NUMBER;
  const std::string jpeg_version =
      std::to_string(jpeg / 1000000) + "." + std::to_string(jpeg / 1000 % 1000) + "." + std::to_string(jpeg % 1000);
  return {{"libpng", loaded_version(png_get_libpng_ver(nullptr), PNG_LIBPNG_VER_STRING)},
          {"libjpeg-turbo", jpeg_version},
          {"zlib", loaded_version(zlibVersion(), ZLIB_VERSION)}};
}

}  // namespace medlab
