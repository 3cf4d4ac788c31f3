// Fast matmul over Q4_0x16 weights (kernels/q4_0x16.h): the walk over panels and activation rows that every
// x86 kernel set shares. A kernel file includes this inside its target region and anonymous namespace, after
// defining its register tile, `template <int MR> void x16_panel(const uint8_t* panel, const Q8Row (&x)[MR],
// int64_t nb, float (*out)[16])` (the 16 rows of one panel against MR activation rows, quant_matmul.h's
// order), and `kX16Tile`, the most activation rows its tile takes.
#pragma once

// Decode (1 to 3 activation rows) reads the panels front to back, one stream. Prefill takes the activation
// rows in blocks that stay in L2 while every panel of the range meets them.
template <int MR>
void x16_tile(const uint8_t* panel, const uint8_t* xq, size_t x_row_bytes, int64_t cols, int nr, float* y,
              int64_t y_stride) {
  Q8Row x[MR];
  for (int i = 0; i < MR; ++i) x[i] = q8_row(xq + size_t(i) * x_row_bytes, cols);
  alignas(64) float out[MR][kQ4_0x16Rows];
  x16_panel<MR>(panel, x, cols / 32, out);
  for (int i = 0; i < MR; ++i) std::copy(out[i], out[i] + nr, y + i * y_stride);
}

void x16_rows(const void* xq, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end, float* y,
              int64_t y_stride) {
  const size_t x_row_bytes = fast_activation_row_bytes(w.dtype, w.cols), panel_bytes = q4_0x16_panel_bytes(w.cols);
  const auto* x = static_cast<const uint8_t*>(xq);
  const auto* wd = static_cast<const uint8_t*>(w.data);
  auto panels = [&](int64_t i, auto tile) {  // every panel of the range against activation rows from i on
    for (int64_t r = row_begin; r < row_end; r += kQ4_0x16Rows)
      tile(wd + size_t(r / kQ4_0x16Rows) * panel_bytes, x + size_t(i) * x_row_bytes, x_row_bytes, w.cols,
           int(std::min<int64_t>(kQ4_0x16Rows, row_end - r)), y + i * y_stride + r, y_stride);
  };
  switch (m) {
    case 1: return panels(0, x16_tile<1>);
    case 2: return panels(0, x16_tile<2>);
    case 3: return panels(0, x16_tile<3>);
    default: break;
  }
  constexpr int64_t kL2Bytes = int64_t(1) << 19;
  const int64_t x_block = std::max<int64_t>(kX16Tile, kL2Bytes / int64_t(x_row_bytes) / kX16Tile * kX16Tile);
  for (int64_t i0 = 0; i0 < m; i0 += x_block) {
    const int64_t i1 = std::min(m, i0 + x_block);
    for (int64_t r = row_begin; r < row_end; r += kQ4_0x16Rows) {
      const uint8_t* panel = wd + size_t(r / kQ4_0x16Rows) * panel_bytes;
      const int nr = int(std::min<int64_t>(kQ4_0x16Rows, row_end - r));
      int64_t i = i0;
      for (; i + kX16Tile <= i1; i += kX16Tile)
        x16_tile<kX16Tile>(panel, x + size_t(i) * x_row_bytes, x_row_bytes, w.cols, nr, y + i * y_stride + r, y_stride);
      for (; i < i1; ++i)
        x16_tile<1>(panel, x + size_t(i) * x_row_bytes, x_row_bytes, w.cols, nr, y + i * y_stride + r, y_stride);
    }
  }
}
