// 512-bit loads of per-row values and codes in the 16-row panels (x16_panels.h), for the AVX-512 kernel files:
// each includes this inside its target region and anonymous namespace.
#pragma once

// 16 bytes or f16 values, one per row, widened to the rows' lanes.
inline __m512i rows_u8(const uint8_t* p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline __m512i rows_s8(const uint8_t* p) { return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline __m512 rows_f16(const uint8_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }

// Bit s of each byte moved to bit 4 (Q5_K's fifth bit of sub-block s).
inline __m512i shift_to_bit4(__m512i high, int s) {
  return s < 4 ? _mm512_sll_epi16(high, _mm_cvtsi32_si128(4 - s)) : _mm512_srl_epi16(high, _mm_cvtsi32_si128(s - 4));
}

// A Q6_Kx16 step's three code groups (ql, ql + 32, qh) to its 4 value groups k = 0..3: values 128n + 32k + 4q..
// of each row, 6-bit codes (0..63), for step 8n + q.
inline void q6_step_values(const uint8_t* step, __m512i (&v)[4]) {
  const __m512i low4 = _mm512_set1_epi8(0x0F), bits45 = _mm512_set1_epi8(0x30);
  const __m512i first = _mm512_loadu_si512(step), second = _mm512_loadu_si512(step + 64),
                high = _mm512_loadu_si512(step + 128);
  v[0] = _mm512_or_si512(_mm512_and_si512(first, low4), _mm512_and_si512(_mm512_slli_epi16(high, 4), bits45));
  v[1] = _mm512_or_si512(_mm512_and_si512(second, low4), _mm512_and_si512(_mm512_slli_epi16(high, 2), bits45));
  v[2] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(first, 4), low4), _mm512_and_si512(high, bits45));
  v[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(second, 4), low4),
                         _mm512_and_si512(_mm512_srli_epi16(high, 2), bits45));
}
