#include "imaging/region.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace medlab {

void outline_region(Image& image, const Region& r) {
  if (r.width <= 0 || r.height <= 0) fail("region: width and height must be positive, not ", r.width, " x ", r.height);
  const int64_t x0 = std::max<int64_t>(r.x, 0), y0 = std::max<int64_t>(r.y, 0);
  const int64_t x1 = std::min<int64_t>(r.x + r.width, image.width), y1 = std::min<int64_t>(r.y + r.height, image.height);
  if (x0 >= x1 || y0 >= y1)
    fail("region: (", r.x, ", ", r.y, ") ", r.width, " x ", r.height, " lies outside the ", image.width, " x ",
         image.height, " image");
  const int64_t thickness = std::max<int64_t>(2, std::lround(0.004 * std::max(image.width, image.height)));
  for (int64_t y = y0; y < y1; ++y) {
    const bool row_edge = y < r.y + thickness || y >= r.y + r.height - thickness;
    for (int64_t x = x0; x < x1; ++x) {
      if (!row_edge && x >= r.x + thickness && x < r.x + r.width - thickness) continue;
      uint8_t* p = image.pixel(int(x), int(y));
      p[0] = 255, p[1] = 0, p[2] = 0;
    }
  }
}

}  // namespace medlab
