#include "kernels/q4_0x16.h"

#include <cstring>

namespace medlab {

size_t q4_0x16_bytes(int64_t rows, int64_t cols) {
  const int64_t panels = (rows + kQ4_0x16Rows - 1) / kQ4_0x16Rows;
  return size_t(panels) * q4_0x16_panel_bytes(cols);
}

void pack_q4_0x16(const void* rows_q4_0, int64_t rows, int64_t cols, int64_t panel_begin, int64_t panel_end,
                  void* out) {
  const int64_t nb = cols / 32;
  const auto* src = static_cast<const BlockQ4_0*>(rows_q4_0);
  for (int64_t p = panel_begin; p < panel_end; ++p) {
    auto* panel = static_cast<uint8_t*>(out) + size_t(p) * q4_0x16_panel_bytes(cols);
    for (int j = 0; j < kQ4_0x16Rows; ++j) {  // reads each row front to back; the panel stays in L2
      const int64_t r = p * kQ4_0x16Rows + j;
      for (int64_t b = 0; b < nb; ++b) {
        const BlockQ4_0 zero{};
        const BlockQ4_0& w = r < rows ? src[r * nb + b] : zero;
        uint8_t* block = panel + size_t(b) * kQ4_0x16BlockBytes;
        for (int t = 0; t < 4; ++t) std::memcpy(block + 64 * t + 4 * j, w.qs + 4 * t, 4);
        std::memcpy(block + 256 + 2 * j, &w.d, 2);
      }
    }
  }
}

void unpack_q4_0x16_row(const void* packed, int64_t cols, int64_t row, BlockQ4_0* out) {
  const int64_t nb = cols / 32, j = row % kQ4_0x16Rows;
  const auto* panel = static_cast<const uint8_t*>(packed) + size_t(row / kQ4_0x16Rows) * q4_0x16_panel_bytes(cols);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* block = panel + size_t(b) * kQ4_0x16BlockBytes;
    for (int t = 0; t < 4; ++t) std::memcpy(out[b].qs + 4 * t, block + 64 * t + 4 * j, 4);
    std::memcpy(&out[b].d, block + 256 + 2 * j, 2);
  }
}

}  // namespace medlab
