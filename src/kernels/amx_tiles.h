// The operand of AMX's ldtilecfg (palette 1): the rows and bytes per row of each tile register.
#pragma once

#include <cstdint>

namespace medlab {

struct alignas(64) AmxTileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t bytes_per_row[16] = {};
  uint8_t rows[16] = {};

  // Tiles first..last: `count` rows of `bytes` bytes each.
  AmxTileConfig& shape(int first, int last, int count, int bytes) {
    for (int t = first; t <= last; ++t) {
      rows[t] = uint8_t(count);
      bytes_per_row[t] = uint16_t(bytes);
    }
    return *this;
  }
};

}  // namespace medlab
