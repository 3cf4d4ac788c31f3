// Marking a region of interest on an image: a red rectangle outline, so the model sees the whole image
// with the region pointed out (a crop would hide the context a reader needs to judge the region).
#pragma once

#include <cstdint>

#include "imaging/image.h"

namespace medlab {

// In the image's own pixels: x, y of the top-left corner, then the size.
struct Region {
  int64_t x = 0, y = 0, width = 0, height = 0;
};

// Draws the rectangle's outline in pure red, max(2, 0.4% of the longer side) pixels thick, inside the
// rectangle and clipped to the image. Throws Error for an empty rectangle or one wholly outside the image.
void outline_region(Image& image, const Region& region);

}  // namespace medlab
