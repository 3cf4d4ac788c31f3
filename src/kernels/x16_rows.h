// Fast matmul over weights in 16-row panels (kernels/x16_panels.h): the walk over panels and activation rows
// that every x86 kernel set shares. A kernel file includes this inside its target region and anonymous
// namespace, after defining, for each panel type it computes, a struct with `static constexpr int kTile`
// (the most activation rows its register tile takes) and `template <int MR> static void panel(const uint8_t*
// panel, const uint8_t* const (&x)[MR], int64_t cols, float (*out)[kX16Rows])`: the 16 rows of one panel
// against MR activation rows (fast_activation_row_bytes each), in quant_matmul.h's order.
#pragma once

// Decode (1 to 3 activation rows) reads the panels front to back, one stream. Prefill takes the activation
// rows in blocks that stay in L2 while every panel of the range meets them.
template <class Kernel, int MR>
void x16_tile(const uint8_t* panel, const uint8_t* xq, size_t x_row_bytes, int64_t cols, int nr, float* y,
              int64_t y_stride) {
  const uint8_t* x[MR];
  for (int i = 0; i < MR; ++i) x[i] = xq + size_t(i) * x_row_bytes;
  alignas(64) float out[MR][kX16Rows];
  Kernel::template panel<MR>(panel, x, cols, out);
  for (int i = 0; i < MR; ++i) {
    if (nr == kX16Rows)  // a constant size, copied inline rather than by a library call per row
      std::memcpy(y + i * y_stride, out[i], sizeof out[i]);
    else
      std::copy(out[i], out[i] + nr, y + i * y_stride);
  }
}

template <class Kernel>
void x16_rows(const void* xq, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end, float* y,
              int64_t y_stride) {
  const size_t x_row_bytes = fast_activation_row_bytes(w.dtype, w.cols);
  const size_t panel_bytes = x16_panel_bytes(w.dtype, w.cols);
  const auto* x = static_cast<const uint8_t*>(xq);
  const auto* wd = static_cast<const uint8_t*>(w.data);
  auto panels = [&](auto tile) {  // every panel of the range against the first activation rows
    for (int64_t r = row_begin; r < row_end; r += kX16Rows)
      tile(wd + size_t(r / kX16Rows) * panel_bytes, x, x_row_bytes, w.cols,
           int(std::min<int64_t>(kX16Rows, row_end - r)), y + r, y_stride);
  };
  switch (m) {
    case 1: return panels(x16_tile<Kernel, 1>);
    case 2: return panels(x16_tile<Kernel, 2>);
    case 3: return panels(x16_tile<Kernel, 3>);
    default: break;
  }
  constexpr int64_t kL2Bytes = int64_t(1) << 19;
  constexpr int64_t kTile = Kernel::kTile;
  const int64_t x_block = std::max<int64_t>(kTile, kL2Bytes / int64_t(x_row_bytes) / kTile * kTile);
  for (int64_t i0 = 0; i0 < m; i0 += x_block) {
    const int64_t i1 = std::min(m, i0 + x_block);
    for (int64_t r = row_begin; r < row_end; r += kX16Rows) {
      const uint8_t* panel = wd + size_t(r / kX16Rows) * panel_bytes;
      const int nr = int(std::min<int64_t>(kX16Rows, row_end - r));
      int64_t i = i0;
      for (; i + kTile <= i1; i += kTile)
        x16_tile<Kernel, kTile>(panel, x + size_t(i) * x_row_bytes, x_row_bytes, w.cols, nr, y + i * y_stride + r,
                                y_stride);
      for (; i < i1; ++i)
        x16_tile<Kernel, 1>(panel, x + size_t(i) * x_row_bytes, x_row_bytes, w.cols, nr, y + i * y_stride + r,
                            y_stride);
    }
  }
}
