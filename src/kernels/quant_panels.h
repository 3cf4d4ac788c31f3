// Q8_0 and Q4_0 weights against Q8_0 activations in panels of 8 weight rows (quant_matmul.h's order): the
// same source for every x86 kernel set. A kernel file includes this inside its target region and its own
// anonymous namespace, after defining half(), load256() and prefetch_ahead(), so each set compiles it for
// its ISA; kVnni = true takes AVX512-VNNI's dpbusd (4 products and their sum in one instruction) for the
// block products, in prefill and decode.
#pragma once

// A block's integer dot products with the panel's 8 rows land in the 8 int32 lanes of one vector (row j in
// lane j), converted and added, times each row's d_w * d_x, into the rows' float lanes: quant_matmul.h's
// order, and no horizontal sum ends an output.

constexpr int kPanelRows = 8;
// Activation rows per prefill tile: their accumulators and sums take 2 registers each, of 16 (AVX2) or 32.
template <bool kVnni>
constexpr int kPanelRowsX = kVnni ? 8 : 4;

template <DType D>
using Block32Of = std::conditional_t<D == DType::Q8_0, BlockQ8_0, BlockQ4_0>;

// A block's 32 values as int8 (Q8_0), or its 4-bit codes (value + 8) in value order (Q4_0: the 16 bytes in
// both lanes, the high lane shifted to its high nibbles).
template <DType D>
inline __m256i block_values(const Block32Of<D>& blk) {
  if constexpr (D == DType::Q8_0) {
    return load256(blk.qs);
  } else {
    const __m256i q = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.qs)));
    return _mm256_and_si256(_mm256_srlv_epi64(q, _mm256_set_epi64x(4, 4, 0, 0)), _mm256_set1_epi8(0x0F));
  }
}

// Row j's block b in a panel of rows row_bytes apart.
template <DType D>
inline const Block32Of<D>& panel_block(const uint8_t* panel, size_t row_bytes, int j, int64_t b) {
  return reinterpret_cast<const Block32Of<D>*>(panel + size_t(j) * row_bytes)[b];
}

// The integer dot product of each row's block b with activation block x, row j in lane j. Q8_0: |w| times x
// with w's sign (maddubs takes unsigned times signed), and int32 sums; with VNNI, (w + 128) times x by dpbusd,
// less 128 times the activations' sum. Q4_0: codes times x in int16 (a half block's sum is at most
// 16 * 15 * 127 < 2^15) or by dpbusd, widened at the end, less 8 times the activations' sum.
template <DType D, bool kVnni>
inline __m256i panel_dots(const uint8_t* panel, size_t row_bytes, int64_t b, const int8_t* x, int32_t x_sum) {
  const __m256i xv = _mm256_load_si256(reinterpret_cast<const __m256i*>(x));
  __m256i p[kPanelRows];
  #pragma GCC unroll 8
  for (int j = 0; j < kPanelRows; ++j) {
    const __m256i w = block_values<D>(panel_block<D>(panel, row_bytes, j, b));
    if constexpr (kVnni)
      p[j] = _mm256_dpbusd_epi32(_mm256_setzero_si256(),
                                 D == DType::Q8_0 ? _mm256_xor_si256(w, _mm256_set1_epi8(char(0x80))) : w, xv);
    else if constexpr (D == DType::Q8_0)
      p[j] = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(xv, w)), _mm256_set1_epi16(1));
    else
      p[j] = _mm256_maddubs_epi16(w, xv);
  }
  if constexpr (kVnni || D == DType::Q8_0) {  // int32 lanes: per 128-bit half, rows 0-3 then 4-7
    const __m256i low = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
    const __m256i high = _mm256_hadd_epi32(_mm256_hadd_epi32(p[4], p[5]), _mm256_hadd_epi32(p[6], p[7]));
    const __m256i dots =
        _mm256_add_epi32(_mm256_permute2x128_si256(low, high, 0x20), _mm256_permute2x128_si256(low, high, 0x31));
    if constexpr (!kVnni) return dots;
    return _mm256_sub_epi32(dots, _mm256_set1_epi32((D == DType::Q8_0 ? 128 : 8) * x_sum));
  } else {
    const __m256i s = _mm256_hadd_epi16(
        _mm256_hadd_epi16(_mm256_hadd_epi16(p[0], p[1]), _mm256_hadd_epi16(p[2], p[3])),
        _mm256_hadd_epi16(_mm256_hadd_epi16(p[4], p[5]), _mm256_hadd_epi16(p[6], p[7])));
    const __m256i dots = _mm256_add_epi32(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(s)),
                                          _mm256_cvtepi16_epi32(_mm256_extracti128_si256(s, 1)));
    return _mm256_sub_epi32(dots, _mm256_set1_epi32(8 * x_sum));
  }
}

template <DType D>
inline __m256 panel_scales(const uint8_t* panel, size_t row_bytes, int64_t b) {
  auto d = [&](int j) { return int16_t(panel_block<D>(panel, row_bytes, j, b).d); };
  return _mm256_cvtph_ps(_mm_setr_epi16(d(0), d(1), d(2), d(3), d(4), d(5), d(6), d(7)));
}

// Decode: 8 weight rows read in place (each block meets 1 to 3 activation rows, so repacking is not repaid).
// The hardware prefetchers lose track of 8 streams a row apart, so the next panel (contiguous: rows follow
// each other) is asked into L2 front to back at this panel's pace; null for the last panel.
template <DType D, bool kVnni, int MR>
void panel_in_place(const uint8_t* panel, size_t row_bytes, const uint8_t* next, const Q8Row (&x)[MR], int64_t nb,
                    float* y, int64_t y_stride) {
  constexpr size_t kStep = kPanelRows * sizeof(Block32Of<D>);  // bytes of the next panel per block
  __m256 acc[MR];
  for (auto& a : acc) a = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    if (next) {
      #pragma GCC unroll 8
      for (size_t line = 0; line <= kStep; line += 64)
        _mm_prefetch(reinterpret_cast<const char*>(next + b * kStep + line), _MM_HINT_T1);
    }
    const __m256 w_scales = panel_scales<D>(panel, row_bytes, b);
    #pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m256i dots = panel_dots<D, kVnni>(panel, row_bytes, b, x[i].qs + 32 * b, x[i].sums[b]);
      acc[i] = _mm256_fmadd_ps(_mm256_mul_ps(w_scales, _mm256_set1_ps(x[i].d[b])), _mm256_cvtepi32_ps(dots), acc[i]);
    }
  }
  for (int i = 0; i < MR; ++i) _mm256_storeu_ps(y + i * y_stride, acc[i]);
}

// One weight row against one activation row, in the same order (rows left over after whole panels).
template <DType D>
float row_dot(const Block32Of<D>* w, const Q8Row& x, int64_t nb) {
  float acc = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i v = block_values<D>(w[b]);
    const __m256i xv = _mm256_load_si256(reinterpret_cast<const __m256i*>(x.qs + 32 * b));
    const __m256i pairs = D == DType::Q8_0 ? _mm256_maddubs_epi16(_mm256_abs_epi8(v), _mm256_sign_epi8(xv, v))
                                           : _mm256_maddubs_epi16(v, xv);
    const __m256i quads = _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
    const __m128i h = _mm_add_epi32(_mm256_castsi256_si128(quads), _mm256_extracti128_si256(quads, 1));
    const __m128i h2 = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4E));
    int32_t sum = _mm_cvtsi128_si32(_mm_add_epi32(h2, _mm_shuffle_epi32(h2, 0xB1)));
    if constexpr (D == DType::Q4_0) sum -= 8 * x.sums[b];
    acc = std::fma(half(w[b].d) * x.d[b], float(sum), acc);
  }
  return acc;
}

// Prefill: a panel repacked once per block of activation rows. Per block, 8 vectors: vector s holds values
// 4s to 4s + 3 of each row (row j in lane j), as Q4_0 codes, or for Q8_0 w + 128 (VNNI: dpbusd's unsigned
// operand, so that the activations go in as they are) or |w| then w (maddubs); then the rows' scales.
template <DType D, bool kVnni>
constexpr int64_t kPanelVectorsPerBlock = D == DType::Q8_0 && !kVnni ? 2 * kPanelRows + 1 : kPanelRows + 1;

// Lane j of vector s of the result = lane s of r[j]: the 8 x 8 transpose of 32-bit lanes.
inline void transpose8x32(__m256i (&r)[8]) {
  __m256i t[8], u[8];
  #pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    t[2 * k] = _mm256_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm256_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
  }
  #pragma GCC unroll 4
  for (int k = 0; k < 2; ++k) {
    u[4 * k] = _mm256_unpacklo_epi64(t[4 * k], t[4 * k + 2]);
    u[4 * k + 1] = _mm256_unpackhi_epi64(t[4 * k], t[4 * k + 2]);
    u[4 * k + 2] = _mm256_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]);
    u[4 * k + 3] = _mm256_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]);
  }
  #pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    r[k] = _mm256_permute2x128_si256(u[k], u[k + 4], 0x20);
    r[k + 4] = _mm256_permute2x128_si256(u[k], u[k + 4], 0x31);
  }
}

// nr (1 to 8) rows from `rows` into scratch, vectors `stride` apart (VNNI: 2, two panels interleaved);
// missing rows are zero blocks with zero scales. kSigned (VNNI's layout) keeps the values signed, Q8_0's w
// and Q4_0's code - 8, for AMX, which multiplies signed by signed. The loops have fixed counts and are
// unrolled, so the 8 vectors and their transposes stay in registers: with nr as a bound GCC had kept them on
// the stack, and the repacking had taken 12 % of a q8_0 prompt in `perf`.
template <DType D, bool kVnni, bool kSigned = false>
void repack_panel(const uint8_t* rows, size_t row_bytes, int nr, int64_t nb, __m256i* out, int stride) {
  if (nr < kPanelRows) {  // a last partial panel: its rows padded with zero blocks
    thread_local std::vector<uint8_t> padded;
    padded.assign(kPanelRows * row_bytes, 0);
    std::memcpy(padded.data(), rows, size_t(nr) * row_bytes);
    rows = padded.data();
  }
  for (int64_t b = 0; b < nb; ++b, out += stride * kPanelVectorsPerBlock<D, kVnni>) {
    __m256i v[kPanelRows];
    #pragma GCC unroll 8
    for (int j = 0; j < kPanelRows; ++j) {
      const auto& blk = panel_block<D>(rows, row_bytes, j, b);
      if (b % 2 == 0) prefetch_ahead(reinterpret_cast<const uint8_t*>(&blk));
      v[j] = block_values<D>(blk);
    }
    const __m256 scales = panel_scales<D>(rows, row_bytes, b);
    if constexpr (kSigned && D == DType::Q4_0) {
      #pragma GCC unroll 8
      for (auto& values : v) values = _mm256_sub_epi8(values, _mm256_set1_epi8(8));
    } else if constexpr (D == DType::Q8_0 && kVnni && !kSigned) {
      #pragma GCC unroll 8
      for (auto& values : v) values = _mm256_xor_si256(values, _mm256_set1_epi8(char(0x80)));
    } else if constexpr (D == DType::Q8_0 && !kVnni) {
      __m256i a[kPanelRows];
      #pragma GCC unroll 8
      for (int j = 0; j < kPanelRows; ++j) a[j] = _mm256_abs_epi8(v[j]);
      transpose8x32(a);
      #pragma GCC unroll 8
      for (int s = 0; s < kPanelRows; ++s) _mm256_store_si256(out + stride * s, a[s]);
    }
    transpose8x32(v);
    __m256i* values = out + stride * (D == DType::Q8_0 && !kVnni ? kPanelRows : 0);
    #pragma GCC unroll 8
    for (int s = 0; s < kPanelRows; ++s) _mm256_store_si256(values + stride * s, v[s]);
    _mm256_store_ps(reinterpret_cast<float*>(values + stride * kPanelRows), scales);
  }
}

// MR activation rows against a repacked panel, each row's 8 results into `out` (AVX2; VNNI takes
// panel_pair_vnni). Q4_0 adds the 8 steps' int16 pairs before widening (a lane's sum is at most
// 16 * 15 * 127 < 2^15).
template <DType D, int MR>
void panel_repacked(const __m256i* panel, const Q8Row (&x)[MR], int64_t nb, __m256* out) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[MR];
  for (auto& a : acc) a = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, panel += kPanelVectorsPerBlock<D, false>) {
    __m256i sum[MR];
    for (auto& s : sum) s = _mm256_setzero_si256();
    #pragma GCC unroll 8
    for (int s = 0; s < kPanelRows; ++s) {
      #pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        int32_t four;
        std::memcpy(&four, x[i].qs + 32 * b + 4 * s, 4);
        const __m256i xv = _mm256_set1_epi32(four);
        const __m256i w = _mm256_load_si256(panel + s);
        const __m256i xs = D == DType::Q8_0 ? _mm256_sign_epi8(xv, _mm256_load_si256(panel + kPanelRows + s)) : xv;
        if constexpr (D == DType::Q8_0)
          sum[i] = _mm256_add_epi32(sum[i], _mm256_madd_epi16(_mm256_maddubs_epi16(w, xs), ones));
        else
          sum[i] = _mm256_add_epi16(sum[i], _mm256_maddubs_epi16(w, xs));
      }
    }
    const __m256 w_scales = _mm256_load_ps(reinterpret_cast<const float*>(panel + kPanelVectorsPerBlock<D, false> - 1));
    #pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      __m256i dots = sum[i];
      if constexpr (D == DType::Q4_0)
        dots = _mm256_sub_epi32(_mm256_madd_epi16(dots, ones), _mm256_set1_epi32(8 * x[i].sums[b]));
      acc[i] = _mm256_fmadd_ps(_mm256_mul_ps(w_scales, _mm256_set1_ps(x[i].d[b])), _mm256_cvtepi32_ps(dots), acc[i]);
    }
  }
  for (int i = 0; i < MR; ++i) out[i] = acc[i];
}

template <int MR>
void q8_rows(const uint8_t* xq, size_t x_row_bytes, int64_t cols, Q8Row (&x)[MR]) {
  for (int i = 0; i < MR; ++i) x[i] = q8_row(xq + i * x_row_bytes, cols);
}

// Decode of Q8_0/Q4_0: whole panels in place, then single rows.
template <DType D, bool kVnni, int MR>
void decode_rows(const uint8_t* xq, size_t x_row_bytes, const uint8_t* wd, size_t w_row_bytes, int64_t cols,
                 int64_t row_begin, int64_t row_end, float* y, int64_t y_stride) {
  using Block = Block32Of<D>;
  Q8Row x[MR];
  q8_rows(xq, x_row_bytes, cols, x);
  const int64_t nb = cols / 32;
  int64_t r = row_begin;
  for (; r + kPanelRows <= row_end; r += kPanelRows) {
    const uint8_t* panel = wd + size_t(r) * w_row_bytes;
    const uint8_t* next = r + 2 * kPanelRows <= row_end ? panel + kPanelRows * w_row_bytes : nullptr;
    panel_in_place<D, kVnni, MR>(panel, w_row_bytes, next, x, nb, y + r, y_stride);
  }
  for (; r < row_end; ++r)
    for (int i = 0; i < MR; ++i)
      y[i * y_stride + r] = row_dot<D>(reinterpret_cast<const Block*>(wd + size_t(r) * w_row_bytes), x[i], nb);
}

// Q8_0 and Q4_0: decode in place; otherwise each panel is repacked once per block of activation rows.
// With AVX-512, two panels at once: 16 rows in the 16 lanes of a 512-bit vector, so that each broadcast
// activation value meets twice the weights (Zen 4 runs 512-bit integer work at the same rate per byte).
// Both types' codes are unsigned (Q8_0's w + 128, Q4_0's w + 8): each row's integer sum starts at minus the
// offset times the block's activation sum, so no step spends an instruction on signs and the sum ends exact.
//
// The MR activation rows of a tile are interleaved first (pack_vnni_tile), so that one pointer reaches all
// they give a block: with a pointer, a sum and a scale per row the kernel ran out of general registers and
// spent about as many instructions on addresses as on dot products.
template <int MR>
constexpr int64_t kVnniTileBytesPerBlock = 40 * MR;  // 8 steps x MR x 4 codes, MR start sums, MR scales

template <int MR>
void pack_vnni_tile(const Q8Row (&x)[MR], int64_t nb, int32_t offset, uint8_t* out) {
  for (int64_t b = 0; b < nb; ++b, out += kVnniTileBytesPerBlock<MR>) {
    for (int s = 0; s < kPanelRows; ++s)
      for (int i = 0; i < MR; ++i) std::memcpy(out + 4 * (s * MR + i), x[i].qs + 32 * b + 4 * s, 4);
    for (int i = 0; i < MR; ++i) {
      const int32_t start = -offset * x[i].sums[b];
      std::memcpy(out + 4 * (8 * MR + i), &start, 4);
      std::memcpy(out + 4 * (9 * MR + i), &x[i].d[b], 4);
    }
  }
}

template <DType D, int MR>
void panel_pair_vnni(const __m512i* pair, const uint8_t* tile, int64_t nb, __m512* out) {
  __m512 acc[MR];
  for (auto& a : acc) a = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, pair += kPanelVectorsPerBlock<D, true>, tile += kVnniTileBytesPerBlock<MR>) {
    const auto* codes = reinterpret_cast<const int32_t*>(tile);
    const int32_t* starts = codes + 8 * MR;
    const auto* scales = reinterpret_cast<const float*>(starts + MR);
    __m512i sum[MR];
    #pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) sum[i] = _mm512_set1_epi32(starts[i]);
    #pragma GCC unroll 8
    for (int s = 0; s < kPanelRows; ++s) {
      const __m512i w = _mm512_load_si512(pair + s);
      #pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) sum[i] = _mm512_dpbusd_epi32(sum[i], w, _mm512_set1_epi32(codes[s * MR + i]));
    }
    const __m512 w_scales = _mm512_load_ps(reinterpret_cast<const float*>(pair + kPanelRows));
    #pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
      acc[i] = _mm512_fmadd_ps(_mm512_mul_ps(w_scales, _mm512_set1_ps(scales[i])), _mm512_cvtepi32_ps(sum[i]), acc[i]);
  }
  for (int i = 0; i < MR; ++i) out[i] = acc[i];
}

template <DType D, bool kVnni>
void panel_rows(const void* xq, int64_t m, const WeightMatrix& w, int64_t row_begin, int64_t row_end, float* y,
                int64_t y_stride) {
  const size_t w_row_bytes = row_bytes(D, w.cols), x_row_bytes = fast_activation_row_bytes(D, w.cols);
  const auto* x = static_cast<const uint8_t*>(xq);
  const auto* wd = static_cast<const uint8_t*>(w.data);
  switch (m) {
    case 1: return decode_rows<D, kVnni, 1>(x, x_row_bytes, wd, w_row_bytes, w.cols, row_begin, row_end, y, y_stride);
    case 2: return decode_rows<D, kVnni, 2>(x, x_row_bytes, wd, w_row_bytes, w.cols, row_begin, row_end, y, y_stride);
    case 3: return decode_rows<D, kVnni, 3>(x, x_row_bytes, wd, w_row_bytes, w.cols, row_begin, row_end, y, y_stride);
    default: break;
  }
  // Activation rows in blocks that stay in L2 while each panel (VNNI: pair of panels), repacked once per
  // block, meets them.
  constexpr int64_t kL2Bytes = int64_t(1) << 20;
  constexpr int kPanels = kVnni ? 2 : 1, kRows = kPanels * kPanelRows, kTile = kPanelRowsX<kVnni>;
  const int64_t nb = w.cols / 32, panel_vectors = nb * kPanelVectorsPerBlock<D, kVnni>;  // of kPanels panels
  const int64_t x_block = std::max<int64_t>(kTile, kL2Bytes / int64_t(x_row_bytes) / kTile * kTile);
  struct alignas(32 * kPanels) Vector {  // a 256-bit vector per panel: a step of the panels, or a result row
    uint8_t bytes[32 * kPanels];
  };
  thread_local std::vector<Vector> scratch;  // the panels, then the results of x_block rows; grows, then stays
  const size_t need = size_t(panel_vectors + x_block);
  if (scratch.size() < need) scratch.resize(need);
  auto* panels = reinterpret_cast<__m256i*>(scratch.data());
  Vector* results = scratch.data() + panel_vectors;
  thread_local std::vector<uint8_t> tiles;  // VNNI: the x_block rows as tiles (pack_vnni_tile), row i's at i * tile_row
  const size_t tile_row = size_t(nb * kVnniTileBytesPerBlock<1>);
  if (kVnni && tiles.size() < size_t(x_block) * tile_row) tiles.resize(size_t(x_block) * tile_row);
  auto rows_of = [&]<int MR>(int64_t i, Q8Row(&xr)[MR]) {
    for (int t = 0; t < MR; ++t) xr[t] = q8_row(x + size_t(i + t) * x_row_bytes, w.cols);
  };
  for (int64_t i0 = 0; i0 < m; i0 += x_block) {
    const int64_t i1 = std::min(m, i0 + x_block), whole = i0 + (i1 - i0) / kTile * kTile;
    if constexpr (kVnni) {
      auto pack = [&]<int MR>(int64_t i) {
        Q8Row xr[MR];
        rows_of(i, xr);
        pack_vnni_tile<MR>(xr, nb, D == DType::Q8_0 ? 128 : 8, tiles.data() + size_t(i - i0) * tile_row);
      };
      for (int64_t i = i0; i < whole; i += kTile) pack.template operator()<kTile>(i);
      for (int64_t i = whole; i < i1; ++i) pack.template operator()<1>(i);
    }
    for (int64_t r = row_begin; r < row_end; r += kRows) {
      const int nr = int(std::min<int64_t>(kRows, row_end - r));
      for (int p = 0; p < kPanels; ++p)
        repack_panel<D, kVnni>(wd + size_t(r + p * kPanelRows) * w_row_bytes, w_row_bytes,
                               std::clamp(nr - p * kPanelRows, 0, kPanelRows), nb, panels + p, kPanels);
      auto tile = [&]<int MR>(int64_t i) {
        Vector* out = results + (i - i0);
        if constexpr (kVnni) {
          panel_pair_vnni<D, MR>(reinterpret_cast<const __m512i*>(panels), tiles.data() + size_t(i - i0) * tile_row, nb,
                                 reinterpret_cast<__m512*>(out));
        } else {
          Q8Row xr[MR];
          rows_of(i, xr);
          panel_repacked<D, MR>(panels, xr, nb, reinterpret_cast<__m256*>(out));
        }
      };
      int64_t i = i0;
      for (; i < whole; i += kTile) tile.template operator()<kTile>(i);
      for (; i < i1; ++i) tile.template operator()<1>(i);
      for (i = i0; i < i1; ++i) {
        const auto* lanes = reinterpret_cast<const float*>(results[i - i0].bytes);
        if (nr == kRows)  // a constant size, copied inline: a library call per row had cost 2 % of a prompt
          std::memcpy(y + i * y_stride + r, lanes, kRows * sizeof(float));
        else
          std::copy(lanes, lanes + nr, y + i * y_stride + r);
      }
    }
  }
}

