#include "imaging/synthetic_image.h"

namespace medlab {

Image synthetic_image() {
  Image image(896, 896);
  for (int y = 0; y < image.height; ++y)
    for (int x = 0; x < image.width; ++x) {
      uint8_t* p = image.pixel(x, y);
      const int ring = ((x - 448) * (x - 448) + (y - 448) * (y - 448)) / 4096;
      p[0] = p[1] = p[2] = uint8_t((x / 4 + y / 8 + (ring % 2) * 64) % 256);
    }
  return image;
}

}  // namespace medlab
