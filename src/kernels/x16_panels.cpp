#include "kernels/x16_panels.h"

#include <cstring>

#include "core/error.h"
#include "kernels/quant_matmul.h"

namespace medlab {
namespace {

// One row's block into block column `block` of a panel, as row j, and back.
void put(const BlockQ4_0& w, int j, uint8_t* block) {
  for (int t = 0; t < 4; ++t) std::memcpy(block + 64 * t + 4 * j, w.qs + 4 * t, 4);
  std::memcpy(block + 256 + 2 * j, &w.d, 2);
}
void get(const uint8_t* block, int j, BlockQ4_0& w) {
  for (int t = 0; t < 4; ++t) std::memcpy(w.qs + 4 * t, block + 64 * t + 4 * j, 4);
  std::memcpy(&w.d, block + 256 + 2 * j, 2);
}

// The fields Q4_K and Q5_K share: the codes' low 4 bits, the 6-bit scales and mins, d and dmin.
template <class Block>
void put_k4(const Block& w, int j, uint8_t* block) {
  for (int t = 0; t < 32; ++t) std::memcpy(block + 64 * t + 4 * j, w.qs + 4 * t, 4);
  const K4Scales k4 = unpack_k4_scales(w.scales);
  for (int s = 0; s < 8; ++s) {
    block[kQ4KScales + 16 * s + j] = uint8_t(k4.scales >> (8 * s));
    block[kQ4KMins + 16 * s + j] = uint8_t(k4.mins >> (8 * s));
  }
  std::memcpy(block + kQ4KD + 2 * j, &w.d, 2);
  std::memcpy(block + kQ4KDmin + 2 * j, &w.dmin, 2);
}
template <class Block>
void get_k4(const uint8_t* block, int j, Block& w) {
  for (int t = 0; t < 32; ++t) std::memcpy(w.qs + 4 * t, block + 64 * t + 4 * j, 4);
  uint8_t scale[8], min[8];
  for (int s = 0; s < 8; ++s) {
    scale[s] = block[kQ4KScales + 16 * s + j];
    min[s] = block[kQ4KMins + 16 * s + j];
  }
  // The 12-byte packing unpack_k4_scales reads: every one of its 96 bits is a scale's or a min's.
  for (int s = 0; s < 4; ++s) {
    w.scales[s] = uint8_t(scale[s] | (scale[s + 4] >> 4) << 6);
    w.scales[s + 4] = uint8_t(min[s] | (min[s + 4] >> 4) << 6);
    w.scales[s + 8] = uint8_t((scale[s + 4] & 0x0F) | (min[s + 4] & 0x0F) << 4);
  }
  std::memcpy(&w.d, block + kQ4KD + 2 * j, 2);
  std::memcpy(&w.dmin, block + kQ4KDmin + 2 * j, 2);
}

void put(const BlockQ4_K& w, int j, uint8_t* block) { put_k4(w, j, block); }
void get(const uint8_t* block, int j, BlockQ4_K& w) { get_k4(block, j, w); }

void put(const BlockQ5_K& w, int j, uint8_t* block) {
  for (int u = 0; u < 8; ++u) std::memcpy(block + 64 * u + 4 * j, w.qh + 4 * u, 4);
  put_k4(w, j, block + kQ5KLow);
}
void get(const uint8_t* block, int j, BlockQ5_K& w) {
  for (int u = 0; u < 8; ++u) std::memcpy(w.qh + 4 * u, block + 64 * u + 4 * j, 4);
  get_k4(block + kQ5KLow, j, w);
}

// Q6_K's code bytes of step 8n + q, at 0, 64 and 128 in it: ql[64n+4q..], ql[64n+32+4q..], qh[32n+4q..].
constexpr int q6_k_low(int step, int half) { return 64 * (step / 8) + 32 * half + 4 * (step % 8); }
constexpr int q6_k_high(int step) { return 32 * (step / 8) + 4 * (step % 8); }

void put(const BlockQ6_K& w, int j, uint8_t* block) {
  for (int step = 0; step < 16; ++step) {
    uint8_t* at = block + kQ6KStep * step + 4 * j;
    std::memcpy(at, w.ql + q6_k_low(step, 0), 4);
    std::memcpy(at + 64, w.ql + q6_k_low(step, 1), 4);
    std::memcpy(at + 128, w.qh + q6_k_high(step), 4);
  }
  for (int g = 0; g < 16; ++g) block[kQ6KScales + 16 * g + j] = uint8_t(w.scales[g]);
  std::memcpy(block + kQ6KD + 2 * j, &w.d, 2);
}
void get(const uint8_t* block, int j, BlockQ6_K& w) {
  for (int step = 0; step < 16; ++step) {
    const uint8_t* at = block + kQ6KStep * step + 4 * j;
    std::memcpy(w.ql + q6_k_low(step, 0), at, 4);
    std::memcpy(w.ql + q6_k_low(step, 1), at + 64, 4);
    std::memcpy(w.qh + q6_k_high(step), at + 128, 4);
  }
  for (int g = 0; g < 16; ++g) w.scales[g] = int8_t(block[kQ6KScales + 16 * g + j]);
  std::memcpy(&w.d, block + kQ6KD + 2 * j, 2);
}

template <class Block>
void pack_panels(DType panel_type, const Block* src, int64_t rows, int64_t cols, int64_t panel_begin,
                 int64_t panel_end, uint8_t* out) {
  const int64_t nb = cols / block_elements(panel_type);
  for (int64_t p = panel_begin; p < panel_end; ++p) {
    uint8_t* panel = out + size_t(p) * x16_panel_bytes(panel_type, cols);
    for (int j = 0; j < kX16Rows; ++j) {  // reads each row front to back; the panel stays in L2
      const int64_t r = p * kX16Rows + j;
      for (int64_t b = 0; b < nb; ++b) {
        const Block zero{};
        put(r < rows ? src[r * nb + b] : zero, j, panel + size_t(b) * x16_block_bytes(panel_type));
      }
    }
  }
}

template <class Block>
void unpack_row(DType panel_type, const uint8_t* packed, int64_t cols, int64_t row, Block* out) {
  const int64_t nb = cols / block_elements(panel_type);
  const uint8_t* panel = packed + size_t(row / kX16Rows) * x16_panel_bytes(panel_type, cols);
  for (int64_t b = 0; b < nb; ++b) get(panel + size_t(b) * x16_block_bytes(panel_type), int(row % kX16Rows), out[b]);
}

}  // namespace

size_t x16_bytes(DType panel_type, int64_t rows, int64_t cols) {
  const int64_t panels = (rows + kX16Rows - 1) / kX16Rows;
  return size_t(panels) * x16_panel_bytes(panel_type, cols);
}

void pack_x16(DType panel_type, const void* rows_data, int64_t rows, int64_t cols, int64_t panel_begin,
              int64_t panel_end, void* out) {
  auto* o = static_cast<uint8_t*>(out);
  switch (panel_type) {
    case DType::Q4_0x16:
      return pack_panels(panel_type, static_cast<const BlockQ4_0*>(rows_data), rows, cols, panel_begin, panel_end, o);
    case DType::Q4_Kx16:
      return pack_panels(panel_type, static_cast<const BlockQ4_K*>(rows_data), rows, cols, panel_begin, panel_end, o);
    case DType::Q5_Kx16:
      return pack_panels(panel_type, static_cast<const BlockQ5_K*>(rows_data), rows, cols, panel_begin, panel_end, o);
    case DType::Q6_Kx16:
      return pack_panels(panel_type, static_cast<const BlockQ6_K*>(rows_data), rows, cols, panel_begin, panel_end, o);
    default: fail("pack_x16: ", dtype_name(panel_type), " is not a panel type");
  }
}

void unpack_x16_row(DType panel_type, const void* packed, int64_t cols, int64_t row, void* out) {
  const auto* p = static_cast<const uint8_t*>(packed);
  switch (panel_type) {
    case DType::Q4_0x16: return unpack_row(panel_type, p, cols, row, static_cast<BlockQ4_0*>(out));
    case DType::Q4_Kx16: return unpack_row(panel_type, p, cols, row, static_cast<BlockQ4_K*>(out));
    case DType::Q5_Kx16: return unpack_row(panel_type, p, cols, row, static_cast<BlockQ5_K*>(out));
    case DType::Q6_Kx16: return unpack_row(panel_type, p, cols, row, static_cast<BlockQ6_K*>(out));
    default: fail("unpack_x16_row: ", dtype_name(panel_type), " is not a panel type");
  }
}

}  // namespace medlab
