// 512-bit loads of per-row values in the 16-row panels (x16_panels.h), for the AVX-512 kernel files: each
// includes this inside its target region and anonymous namespace.
#pragma once

// 16 bytes or f16 values, one per row, widened to the rows' lanes.
inline __m512i rows_u8(const uint8_t* p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline __m512i rows_s8(const uint8_t* p) { return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline __m512 rows_f16(const uint8_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }

// Bit s of each byte moved to bit 4 (Q5_K's fifth bit of sub-block s).
inline __m512i shift_to_bit4(__m512i high, int s) {
  return s < 4 ? _mm512_sll_epi16(high, _mm_cvtsi32_si128(4 - s)) : _mm512_srl_epi16(high, _mm_cvtsi32_si128(s - 4));
}
