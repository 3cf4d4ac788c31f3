// In-memory images: 8-bit RGB (what the model and the web UI see) and 16-bit greyscale (the
// intermediate of 16-bit PNGs and DICOM before it is brought to 8 bits).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace medlab {

// 8-bit RGB, rows top to bottom, each pixel R, G, B interleaved: rgb.size() == width * height * 3.
struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;

  Image() = default;
  Image(int w, int h) : width(w), height(h), rgb(size_t(w) * size_t(h) * 3) {}

  uint8_t* pixel(int x, int y) { return rgb.data() + (size_t(y) * size_t(width) + size_t(x)) * 3; }
  const uint8_t* pixel(int x, int y) const { return rgb.data() + (size_t(y) * size_t(width) + size_t(x)) * 3; }
};

// 16-bit greyscale, rows top to bottom: values.size() == width * height.
struct Grey16Image {
  int width = 0;
  int height = 0;
  std::vector<uint16_t> values;

  Grey16Image() = default;
  Grey16Image(int w, int h) : width(w), height(h), values(size_t(w) * size_t(h)) {}
};

}  // namespace medlab
