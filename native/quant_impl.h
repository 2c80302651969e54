// Kernels on quantised frozen weights (ggml block formats exactly as GGUF stores them), compiled
// once per instruction set: isa_impl.h includes this file INSIDE namespace rl4qe::RL4QE_ISA, after
// its own includes and the sgemm it reuses, so it has no #include of its own.
//
// The value of every element is the float32 number src/backend/quant.ts (ggml's
// dequantize_row_*) defines, bit for bit: each decoder computes the same float products and sums
// (for the formats with a minimum, q·d is exact in float32, so a fused multiply-add, if the
// compiler forms one, rounds the same way as the multiply then add).
//
// Decoding is written once per format as a block decoder that hands 16 (AVX-512) or 8 (AVX2)
// decoded floats at a time, with their offset inside the block, to a sink: StoreSink writes them
// to memory (a row buffer, an embedding row, a panel for sgemm); DotSink multiplies them straight
// into the dot products with up to four rows of x, so the weights are never stored as floats
// (qmatmul with m ≤ 4, the decoding step). Stage one of every decoder turns the packed quants into
// 16 int8 values with 128-bit integer ops (shared by both ISAs); stage two converts and scales
// them. The portable build (and any format without a vector decoder) decodes whole rows with the
// scalar decoders below into a buffer and runs the f32 small-M kernel on it.

// ---- layout and scalar decoders ------------------------------------------------------------

/** 2-byte IEEE half at p (little endian) as float. */
static inline float qHalf(const uint8_t* p) {
  const uint16_t h = (uint16_t)(p[0] | (p[1] << 8));
#if defined(__F16C__)
  return _cvtsh_ss(h);
#else
  const uint32_t s = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (e == 0) {
    const float f = (float)mant * 5.9604644775390625e-8f;  // subnormal: mant · 2^-24, exact
    return s ? -f : f;
  }
  const uint32_t bits = e == 31 ? (s | 0x7f800000u | (mant << 13)) : (s | ((e + 112) << 23) | (mant << 13));
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
#endif
}

static inline float qBf16(const uint8_t* p) {
  const uint32_t bits = (uint32_t)(p[0] | (p[1] << 8)) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// 6-bit scale and min j of the K-quants (get_scale_min_k4).
static inline void qScaleMin(const uint8_t* s, int j, int& sc, int& mn) {
  if (j < 4) {
    sc = s[j] & 63;
    mn = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4);
    mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

/** n elements (a multiple of the block size) of `type` from b into y: the definition. */
static void decodeScalar(int type, const uint8_t* b, int64_t n, float* y) {
  int bs = 1, ts = 4;
  quantLayout(type, bs, ts);
  const int64_t nb = n / bs;
  switch (type) {
    case 0: std::memcpy(y, b, (size_t)n * 4); return;
    case 1:
      for (int64_t i = 0; i < n; ++i) y[i] = qHalf(b + 2 * i);
      return;
    case 30:
      for (int64_t i = 0; i < n; ++i) y[i] = qBf16(b + 2 * i);
      return;
    default: break;
  }
  for (int64_t i = 0; i < nb; ++i, b += ts) {
    switch (type) {
      case 8: {  // q8_0: qs · d
        const float d = qHalf(b);
        for (int j = 0; j < 32; ++j) y[j] = (float)(int8_t)b[2 + j] * d;
        break;
      }
      case 2: {  // q4_0: (nibble − 8) · d; low nibbles first
        const float d = qHalf(b);
        for (int j = 0; j < 16; ++j) {
          y[j] = (float)((b[2 + j] & 0xf) - 8) * d;
          y[j + 16] = (float)((b[2 + j] >> 4) - 8) * d;
        }
        break;
      }
      case 3: {  // q4_1: nibble · d + m
        const float d = qHalf(b), m = qHalf(b + 2);
        for (int j = 0; j < 16; ++j) {
          const float t0 = (float)(b[4 + j] & 0xf) * d, t1 = (float)(b[4 + j] >> 4) * d;
          y[j] = t0 + m;
          y[j + 16] = t1 + m;
        }
        break;
      }
      case 6:    // q5_0: (5-bit − 16) · d
      case 7: {  // q5_1: 5-bit · d + m
        const bool q51 = type == 7;
        const float d = qHalf(b), m = q51 ? qHalf(b + 2) : 0.0f;
        const uint8_t* h = b + (q51 ? 4 : 2);
        const uint32_t qh = (uint32_t)h[0] | ((uint32_t)h[1] << 8) | ((uint32_t)h[2] << 16) |
                            ((uint32_t)h[3] << 24);
        const uint8_t* qs = h + 4;
        for (int j = 0; j < 16; ++j) {
          const int x0 = (qs[j] & 0xf) | (int)(((qh >> j) << 4) & 0x10);
          const int x1 = (qs[j] >> 4) | (int)((qh >> (j + 12)) & 0x10);
          if (q51) {
            const float t0 = (float)x0 * d, t1 = (float)x1 * d;
            y[j] = t0 + m;
            y[j + 16] = t1 + m;
          } else {
            y[j] = (float)(x0 - 16) * d;
            y[j + 16] = (float)(x1 - 16) * d;
          }
        }
        break;
      }
      case 12:    // q4_K
      case 13: {  // q5_K
        const bool k5 = type == 13;
        const float d = qHalf(b), dmin = qHalf(b + 2);
        const uint8_t* s = b + 4;
        const uint8_t* qh = b + 16;
        const uint8_t* q = b + (k5 ? 48 : 16);
        float* o = y;
        for (int is = 0; is < 8; is += 2) {
          int sc, mn;
          qScaleMin(s, is, sc, mn);
          const float d1 = d * (float)sc, m1 = dmin * (float)mn;
          qScaleMin(s, is + 1, sc, mn);
          const float d2 = d * (float)sc, m2 = dmin * (float)mn;
          const int u1 = 1 << is, u2 = 2 << is;
          for (int l = 0; l < 32; ++l) {
            const int h1 = k5 && (qh[l] & u1) ? 16 : 0, h2 = k5 && (qh[l] & u2) ? 16 : 0;
            const float t0 = d1 * (float)((q[l] & 0xf) + h1), t1 = d2 * (float)((q[l] >> 4) + h2);
            o[l] = t0 - m1;
            o[l + 32] = t1 - m2;
          }
          q += 32;
          o += 64;
        }
        break;
      }
      case 14: {  // q6_K
        const float d = qHalf(b + 208);
        const uint8_t* ql = b;
        const uint8_t* qh = b + 128;
        const int8_t* sc = (const int8_t*)(b + 192);
        float* o = y;
        for (int half = 0; half < 2; ++half) {
          for (int l = 0; l < 32; ++l) {
            const int is = l >> 4, hb = qh[l];
            const int q1 = ((ql[l] & 0xf) | ((hb & 3) << 4)) - 32;
            const int q2 = ((ql[l + 32] & 0xf) | (((hb >> 2) & 3) << 4)) - 32;
            const int q3 = ((ql[l] >> 4) | (((hb >> 4) & 3) << 4)) - 32;
            const int q4 = ((ql[l + 32] >> 4) | (((hb >> 6) & 3) << 4)) - 32;
            o[l] = (d * (float)sc[is]) * (float)q1;
            o[l + 32] = (d * (float)sc[is + 2]) * (float)q2;
            o[l + 64] = (d * (float)sc[is + 4]) * (float)q3;
            o[l + 96] = (d * (float)sc[is + 6]) * (float)q4;
          }
          o += 128;
          ql += 64;
          qh += 32;
          sc += 8;
        }
        break;
      }
      default: break;
    }
    y += bs;
  }
}

// ---- vector decoders (AVX-512 / AVX2) ---------------------------------------------------------

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__) && defined(__F16C__))
#define RL4QE_QVEC 1
#if defined(__AVX512F__)
#if defined(__AVX512BW__) && defined(__AVX512VL__)
#define RL4QE_QTABLES 1
#endif
constexpr int QW = 16;
using QV = __m512;
static inline QV qset1(float a) { return _mm512_set1_ps(a); }
static inline QV qzero() { return _mm512_setzero_ps(); }
static inline QV qloadu(const float* p) { return _mm512_loadu_ps(p); }
static inline QV qloadMask(const float* p, int lanes) {
  return _mm512_maskz_loadu_ps((__mmask16)((1u << lanes) - 1u), p);
}
static inline void qstoreu(float* p, QV v) { _mm512_storeu_ps(p, v); }
static inline void qstoreMask(float* p, QV v, int lanes) {
  _mm512_mask_storeu_ps(p, (__mmask16)((1u << lanes) - 1u), v);
}
static inline QV qfma(QV a, QV b, QV c) { return _mm512_fmadd_ps(a, b, c); }
static inline QV qadd(QV a, QV b) { return _mm512_add_ps(a, b); }
static inline float qsum(QV v) { return _mm512_reduce_add_ps(v); }
// 16 int8 (q) → float · d (+ m)
template <class E>
static inline __attribute__((always_inline)) void emitI8(E& e, int at, __m128i q, QV d) {
  e(at, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), d));
}
template <class E>
static inline __attribute__((always_inline)) void emitI8m(E& e, int at, __m128i q, QV d, QV m) {
  e(at, _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), d), m));
}
// QW halves at p → float
static inline QV qF16(const uint8_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
static inline QV qBF16v(const uint8_t* p) {
  const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}
#else
constexpr int QW = 8;
using QV = __m256;
static inline QV qset1(float a) { return _mm256_set1_ps(a); }
static inline QV qzero() { return _mm256_setzero_ps(); }
static inline QV qloadu(const float* p) { return _mm256_loadu_ps(p); }
static inline __m256i qlaneMask(int lanes) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline QV qloadMask(const float* p, int lanes) { return _mm256_maskload_ps(p, qlaneMask(lanes)); }
static inline void qstoreu(float* p, QV v) { _mm256_storeu_ps(p, v); }
static inline void qstoreMask(float* p, QV v, int lanes) { _mm256_maskstore_ps(p, qlaneMask(lanes), v); }
static inline QV qfma(QV a, QV b, QV c) { return _mm256_fmadd_ps(a, b, c); }
static inline QV qadd(QV a, QV b) { return _mm256_add_ps(a, b); }
static inline float qsum(QV v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}
template <class E>
static inline __attribute__((always_inline)) void emitI8(E& e, int at, __m128i q, QV d) {
  e(at, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d));
  e(at + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8))), d));
}
template <class E>
static inline __attribute__((always_inline)) void emitI8m(E& e, int at, __m128i q, QV d, QV m) {
  e(at, _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d), m));
  e(at + 8, _mm256_add_ps(
                _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8))), d), m));
}
static inline QV qF16(const uint8_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
static inline QV qBF16v(const uint8_t* p) {
  const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
#endif

static inline __m128i qld16(const uint8_t* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}
static inline uint32_t qld32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
// Byte j of the result: `val` where bit j of bits16 is set, else 0.
static inline __m128i qBitsToBytes(uint32_t bits16, __m128i val) {
  __m128i v = _mm_set1_epi16((short)(bits16 & 0xffff));
  v = _mm_shuffle_epi8(v, _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1));
  const __m128i sel = _mm_setr_epi8(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
  return _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(v, sel), sel), val);
}
#define RL4QE_QINL static inline __attribute__((always_inline))

// Block decoders: b is the block, o a constant offset added to every element index (lets the
// driver decode two blocks per step with distinct accumulator slots).
template <class E>
RL4QE_QINL void blkQ8_0(const uint8_t* b, E& e, int o) {
  const QV d = qset1(qHalf(b));
  emitI8(e, o, qld16(b + 2), d);
  emitI8(e, o + 16, qld16(b + 18), d);
}
#if !defined(RL4QE_QTABLES)
template <class E>
RL4QE_QINL void blkQ4_0(const uint8_t* b, E& e, int o) {
  const QV d = qset1(qHalf(b));
  const __m128i m4 = _mm_set1_epi8(0x0f), k8 = _mm_set1_epi8(8), qs = qld16(b + 2);
  emitI8(e, o, _mm_sub_epi8(_mm_and_si128(qs, m4), k8), d);
  emitI8(e, o + 16, _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(qs, 4), m4), k8), d);
}
template <class E>
RL4QE_QINL void blkQ4_1(const uint8_t* b, E& e, int o) {
  const QV d = qset1(qHalf(b)), m = qset1(qHalf(b + 2));
  const __m128i m4 = _mm_set1_epi8(0x0f), qs = qld16(b + 4);
  emitI8m(e, o, _mm_and_si128(qs, m4), d, m);
  emitI8m(e, o + 16, _mm_and_si128(_mm_srli_epi16(qs, 4), m4), d, m);
}
template <class E>
RL4QE_QINL void blkQ5_0(const uint8_t* b, E& e, int o) {
  const QV d = qset1(qHalf(b));
  const uint32_t qh = qld32(b + 2);
  const __m128i m4 = _mm_set1_epi8(0x0f), k16 = _mm_set1_epi8(16), qs = qld16(b + 6);
  const __m128i lo = _mm_or_si128(_mm_and_si128(qs, m4), qBitsToBytes(qh, k16));
  const __m128i hi =
      _mm_or_si128(_mm_and_si128(_mm_srli_epi16(qs, 4), m4), qBitsToBytes(qh >> 16, k16));
  emitI8(e, o, _mm_sub_epi8(lo, k16), d);
  emitI8(e, o + 16, _mm_sub_epi8(hi, k16), d);
}
template <class E>
RL4QE_QINL void blkQ5_1(const uint8_t* b, E& e, int o) {
  const QV d = qset1(qHalf(b)), m = qset1(qHalf(b + 2));
  const uint32_t qh = qld32(b + 4);
  const __m128i m4 = _mm_set1_epi8(0x0f), k16 = _mm_set1_epi8(16), qs = qld16(b + 8);
  emitI8m(e, o, _mm_or_si128(_mm_and_si128(qs, m4), qBitsToBytes(qh, k16)), d, m);
  emitI8m(e, o + 16,
          _mm_or_si128(_mm_and_si128(_mm_srli_epi16(qs, 4), m4), qBitsToBytes(qh >> 16, k16)), d, m);
}
template <class E, bool K5>
RL4QE_QINL void blkQ45_K(const uint8_t* b, E& e, int o) {
  const float d = qHalf(b), dmin = qHalf(b + 2);
  const uint8_t* s = b + 4;
  const __m128i m4 = _mm_set1_epi8(0x0f), one = _mm_set1_epi8(1);
  __m128i qh0 = _mm_setzero_si128(), qh1 = _mm_setzero_si128();
  if (K5) qh0 = qld16(b + 16), qh1 = qld16(b + 32);
  const uint8_t* q = b + (K5 ? 48 : 16);
#pragma GCC unroll 4
  for (int t = 0; t < 4; ++t) {
    int sc, mn;
    qScaleMin(s, 2 * t, sc, mn);
    const QV d1 = qset1(d * (float)sc), m1 = qset1(-(dmin * (float)mn));
    qScaleMin(s, 2 * t + 1, sc, mn);
    const QV d2 = qset1(d * (float)sc), m2 = qset1(-(dmin * (float)mn));
    const __m128i a0 = qld16(q + 32 * t), a1 = qld16(q + 32 * t + 16);
    __m128i l0 = _mm_and_si128(a0, m4), l1 = _mm_and_si128(a1, m4);
    __m128i h0 = _mm_and_si128(_mm_srli_epi16(a0, 4), m4), h1 = _mm_and_si128(_mm_srli_epi16(a1, 4), m4);
    if (K5) {  // bit 2t of qh[l] is the 5th bit of the low nibbles, bit 2t + 1 of the high ones
      const __m128i c = _mm_cvtsi32_si128(2 * t), c1 = _mm_cvtsi32_si128(2 * t + 1);
      l0 = _mm_or_si128(l0, _mm_slli_epi16(_mm_and_si128(_mm_srl_epi16(qh0, c), one), 4));
      l1 = _mm_or_si128(l1, _mm_slli_epi16(_mm_and_si128(_mm_srl_epi16(qh1, c), one), 4));
      h0 = _mm_or_si128(h0, _mm_slli_epi16(_mm_and_si128(_mm_srl_epi16(qh0, c1), one), 4));
      h1 = _mm_or_si128(h1, _mm_slli_epi16(_mm_and_si128(_mm_srl_epi16(qh1, c1), one), 4));
    }
    emitI8m(e, o + 64 * t, l0, d1, m1);
    emitI8m(e, o + 64 * t + 16, l1, d1, m1);
    emitI8m(e, o + 64 * t + 32, h0, d2, m2);
    emitI8m(e, o + 64 * t + 48, h1, d2, m2);
  }
}
#endif  // !RL4QE_QTABLES
#if !defined(RL4QE_QTABLES)
template <class E>
RL4QE_QINL void blkQ6_K(const uint8_t* b, E& e, int o) {
  const float d = qHalf(b + 208);
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const __m128i m4 = _mm_set1_epi8(0x0f), m30 = _mm_set1_epi8(0x30), k32 = _mm_set1_epi8(32);
#pragma GCC unroll 2
  for (int half = 0; half < 2; ++half) {
    const uint8_t* ql = b + 64 * half;
    const uint8_t* qh = b + 128 + 32 * half;
    const int8_t* s = sc + 8 * half;
    __m128i q[4][2];  // q[quarter][l0 / 16]: elements 32·quarter + l0 … + 15 of this half
#pragma GCC unroll 2
    for (int u = 0; u < 2; ++u) {
      const __m128i a = qld16(ql + 16 * u), c = qld16(ql + 32 + 16 * u), h = qld16(qh + 16 * u);
      q[0][u] = _mm_or_si128(_mm_and_si128(a, m4), _mm_and_si128(_mm_slli_epi16(h, 4), m30));
      q[1][u] = _mm_or_si128(_mm_and_si128(c, m4), _mm_and_si128(_mm_slli_epi16(h, 2), m30));
      q[2][u] = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(a, 4), m4), _mm_and_si128(h, m30));
      q[3][u] = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(c, 4), m4),
                             _mm_and_si128(_mm_srli_epi16(h, 2), m30));
    }
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r)
#pragma GCC unroll 2
      for (int u = 0; u < 2; ++u)
        emitI8(e, o + 128 * half + 32 * r + 16 * u, _mm_sub_epi8(q[r][u], k32),
               qset1(d * (float)s[u + 2 * r]));
  }
}
#endif  // !RL4QE_QTABLES

#if defined(RL4QE_QTABLES)
// AVX-512 (with BW/VL): the 4- and 5-bit formats take at most 32 distinct values per block (or
// sub-block), so each block builds its table of values once (the same float operations as the
// definition, applied to k = 0 … 15 or 31) and every element is one permute of that table,
// indexed by its quant: no integer-to-float conversion per element. permutexvar uses the low 4
// bits of each index, so the low nibble needs no mask; the 5th bit selects the second table
// through a merge-masked permute.
static inline __m512 qK(int from) {
  return _mm512_add_ps(_mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                       _mm512_set1_ps((float)from));
}
static inline __m512i qZx(const uint8_t* p) { return _mm512_cvtepu8_epi32(qld16(p)); }

// 5-bit indices of the 16 low (q5Lo) or high (q5Hi) nibbles of z (bytes zero-extended to 32
// bits) with the 5th bit from the low or high 16 bits of qh: one permute of two tables each.
static inline __m512i q5Lo(__m512i z, uint32_t qh) {
  const __m512i l = _mm512_and_si512(z, _mm512_set1_epi32(15));
  return _mm512_mask_or_epi32(l, (__mmask16)qh, l, _mm512_set1_epi32(16));
}
static inline __m512i q5Hi(__m512i z, uint32_t qh) {
  const __m512i h = _mm512_srli_epi32(z, 4);
  return _mm512_mask_or_epi32(h, (__mmask16)(qh >> 16), h, _mm512_set1_epi32(16));
}

template <class E>
RL4QE_QINL void blkQ4_0(const uint8_t* b, E& e, int o) {
  const __m512 t = _mm512_mul_ps(qK(-8), qset1(qHalf(b)));
  const __m512i z = qZx(b + 2);
  e(o, _mm512_permutexvar_ps(z, t));
  e(o + 16, _mm512_permutexvar_ps(_mm512_srli_epi32(z, 4), t));
}
template <class E>
RL4QE_QINL void blkQ4_1(const uint8_t* b, E& e, int o) {
  const __m512 t = _mm512_add_ps(_mm512_mul_ps(qK(0), qset1(qHalf(b))), qset1(qHalf(b + 2)));
  const __m512i z = qZx(b + 4);
  e(o, _mm512_permutexvar_ps(z, t));
  e(o + 16, _mm512_permutexvar_ps(_mm512_srli_epi32(z, 4), t));
}
template <class E>
RL4QE_QINL void blkQ5_0(const uint8_t* b, E& e, int o) {
  const __m512 d = qset1(qHalf(b));
  const __m512 t0 = _mm512_mul_ps(qK(-16), d), t1 = _mm512_mul_ps(qK(0), d);
  const uint32_t qh = qld32(b + 2);
  const __m512i z = qZx(b + 6);
  e(o, _mm512_permutex2var_ps(t0, q5Lo(z, qh), t1));
  e(o + 16, _mm512_permutex2var_ps(t0, q5Hi(z, qh), t1));
}
template <class E>
RL4QE_QINL void blkQ5_1(const uint8_t* b, E& e, int o) {
  const __m512 d = qset1(qHalf(b)), m = qset1(qHalf(b + 2));
  const __m512 t0 = _mm512_add_ps(_mm512_mul_ps(qK(0), d), m);
  const __m512 t1 = _mm512_add_ps(_mm512_mul_ps(qK(16), d), m);
  const uint32_t qh = qld32(b + 4);
  const __m512i z = qZx(b + 8);
  e(o, _mm512_permutex2var_ps(t0, q5Lo(z, qh), t1));
  e(o + 16, _mm512_permutex2var_ps(t0, q5Hi(z, qh), t1));
}
template <class E, bool K5>
RL4QE_QINL void blkQ45_K(const uint8_t* b, E& e, int o) {
  const float d = qHalf(b), dmin = qHalf(b + 2);
  const uint8_t* s = b + 4;
  __m128i qh0 = _mm_setzero_si128(), qh1 = _mm_setzero_si128();
  if (K5) qh0 = qld16(b + 16), qh1 = qld16(b + 32);
  const uint8_t* q = b + (K5 ? 48 : 16);
#pragma GCC unroll 4
  for (int t = 0; t < 4; ++t) {
    int sc, mn;
    qScaleMin(s, 2 * t, sc, mn);
    const __m512 d1 = qset1(d * (float)sc), m1 = qset1(dmin * (float)mn);
    qScaleMin(s, 2 * t + 1, sc, mn);
    const __m512 d2 = qset1(d * (float)sc), m2 = qset1(dmin * (float)mn);
    const __m512 lo0 = _mm512_sub_ps(_mm512_mul_ps(qK(0), d1), m1);
    const __m512 hi0 = _mm512_sub_ps(_mm512_mul_ps(qK(0), d2), m2);
    const __m512i z0 = qZx(q + 32 * t), z1 = qZx(q + 32 * t + 16);
    const __m512i y0 = _mm512_srli_epi32(z0, 4), y1 = _mm512_srli_epi32(z1, 4);
    if (K5) {  // bit 2t of qh[l]: 5th bit of the low nibbles; bit 2t + 1: of the high ones
      const __m512 lo1 = _mm512_sub_ps(_mm512_mul_ps(qK(16), d1), m1);
      const __m512 hi1 = _mm512_sub_ps(_mm512_mul_ps(qK(16), d2), m2);
      const __m128i u1 = _mm_set1_epi8((char)(1 << (2 * t))), u2 = _mm_set1_epi8((char)(2 << (2 * t)));
      const __m512i k15 = _mm512_set1_epi32(15), k16 = _mm512_set1_epi32(16);
      const __m512i x0 = _mm512_and_si512(z0, k15), x1 = _mm512_and_si512(z1, k15);
      e(o + 64 * t, _mm512_permutex2var_ps(
                        lo0, _mm512_mask_or_epi32(x0, _mm_test_epi8_mask(qh0, u1), x0, k16), lo1));
      e(o + 64 * t + 16, _mm512_permutex2var_ps(
                             lo0, _mm512_mask_or_epi32(x1, _mm_test_epi8_mask(qh1, u1), x1, k16), lo1));
      e(o + 64 * t + 32, _mm512_permutex2var_ps(
                             hi0, _mm512_mask_or_epi32(y0, _mm_test_epi8_mask(qh0, u2), y0, k16), hi1));
      e(o + 64 * t + 48, _mm512_permutex2var_ps(
                             hi0, _mm512_mask_or_epi32(y1, _mm_test_epi8_mask(qh1, u2), y1, k16), hi1));
    } else {
      e(o + 64 * t, _mm512_permutexvar_ps(z0, lo0));
      e(o + 64 * t + 16, _mm512_permutexvar_ps(z1, lo0));
      e(o + 64 * t + 32, _mm512_permutexvar_ps(y0, hi0));
      e(o + 64 * t + 48, _mm512_permutexvar_ps(y1, hi0));
    }
  }
}
// q6_K: the 6-bit quants of a 128-element half come out of 64 bytes of ql and 32 of qh with a few
// 512-bit byte ops; each group of 16 has its own scale, in order.
template <class E>
RL4QE_QINL void blkQ6_K(const uint8_t* b, E& e, int o) {
  const float d = qHalf(b + 208);
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30), k32 = _mm512_set1_epi8(32);
  // Shift counts per 16-bit lane: low 256 bits (elements 0…31 of a quarter pair) and high.
  const __m512i s42 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
  const __m512i s02 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
#pragma GCC unroll 2
  for (int half = 0; half < 2; ++half) {
    const __m512i Q = _mm512_loadu_si512(b + 64 * half);
    const __m512i H = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 128 + 32 * half)));
    // lo: elements 0…63 of the half (q1 then q2), hi: 64…127 (q3 then q4)
    const __m512i lo = _mm512_sub_epi8(
        _mm512_or_si512(_mm512_and_si512(Q, m4), _mm512_and_si512(_mm512_sllv_epi16(H, s42), m30)), k32);
    const __m512i hi = _mm512_sub_epi8(
        _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(Q, 4), m4),
                        _mm512_and_si512(_mm512_srlv_epi16(H, s02), m30)),
        k32);
    const int8_t* s = sc + 8 * half;
    emitI8(e, o + 128 * half, _mm512_castsi512_si128(lo), qset1(d * (float)s[0]));
    emitI8(e, o + 128 * half + 16, _mm512_extracti32x4_epi32(lo, 1), qset1(d * (float)s[1]));
    emitI8(e, o + 128 * half + 32, _mm512_extracti32x4_epi32(lo, 2), qset1(d * (float)s[2]));
    emitI8(e, o + 128 * half + 48, _mm512_extracti32x4_epi32(lo, 3), qset1(d * (float)s[3]));
    emitI8(e, o + 128 * half + 64, _mm512_castsi512_si128(hi), qset1(d * (float)s[4]));
    emitI8(e, o + 128 * half + 80, _mm512_extracti32x4_epi32(hi, 1), qset1(d * (float)s[5]));
    emitI8(e, o + 128 * half + 96, _mm512_extracti32x4_epi32(hi, 2), qset1(d * (float)s[6]));
    emitI8(e, o + 128 * half + 112, _mm512_extracti32x4_epi32(hi, 3), qset1(d * (float)s[7]));
  }
}
#endif  // RL4QE_QTABLES

/** Whether `type` has a vector block decoder here. */
static inline bool qHasVec(int type) {
  switch (type) {
    case 0: case 1: case 2: case 3: case 6: case 7: case 8: case 12: case 13: case 14: case 30:
      return true;
    default:
      return false;
  }
}

// Emits only the first `n` elements of full vectors decoded from a zero-padded copy (the tail of
// a row of F32/F16/BF16, whose length need not be a multiple of QW).
template <class E>
struct QTail {
  E& e;
  int n;
  void operator()(int at, QV v) {
    if (at < n) e.partial(at, v, std::min(QW, n - at));
  }
  void partial(int at, QV v, int lanes) {
    if (at < n) e.partial(at, v, std::min(lanes, n - at));
  }
};

// Elements-per-item decoders for the 1-element types: 4 vectors at p.
template <class E>
RL4QE_QINL void blkPlain(int type, const uint8_t* p, E& e) {
#pragma GCC unroll 4
  for (int v = 0; v < 4; ++v) {
    const int at = v * QW;
    if (type == 0) {
      QV x;
      std::memcpy(&x, p + 4 * at, sizeof(QV));
      e(at, x);
    } else if (type == 1) {
      e(at, qF16(p + 2 * at));
    } else {
      e(at, qBF16v(p + 2 * at));
    }
  }
}

/**
 * Decodes n elements (a multiple of the block size) of `type` at src into the sink: e.base is
 * set to the element index of each step, then e(at, v) receives elements base + at … + QW − 1.
 */
template <class E>
RL4QE_QINL void decodeVec(int type, const uint8_t* src, int64_t n, E& e) {
  switch (type) {
    case 0: case 1: case 30: {
      const int ts = type == 0 ? 4 : 2;
      constexpr int C = 4 * QW;
      int64_t i = 0;
      for (; i + C <= n; i += C) {
        e.base = i;
        blkPlain(type, src + i * ts, e);
      }
      if (i < n) {
        alignas(64) uint8_t tmp[C * 4] = {};
        std::memcpy(tmp, src + i * ts, (size_t)((n - i) * ts));
        e.base = i;
        QTail<E> t{e, (int)(n - i)};
        blkPlain(type, tmp, t);
      }
      return;
    }
    default: break;
  }
#define RL4QE_Q32(fn, ts)                                 \
  {                                                       \
    const int64_t nb = n / 32;                            \
    int64_t i = 0;                                        \
    for (; i + 2 <= nb; i += 2) {                         \
      e.base = i * 32;                                    \
      fn(src + i * (ts), e, 0);                           \
      fn(src + (i + 1) * (ts), e, 32);                    \
    }                                                     \
    if (i < nb) {                                         \
      e.base = i * 32;                                    \
      fn(src + i * (ts), e, 0);                           \
    }                                                     \
    return;                                               \
  }
  switch (type) {
    case 8: RL4QE_Q32(blkQ8_0, 34)
    case 2: RL4QE_Q32(blkQ4_0, 18)
    case 3: RL4QE_Q32(blkQ4_1, 20)
    case 6: RL4QE_Q32(blkQ5_0, 22)
    case 7: RL4QE_Q32(blkQ5_1, 24)
    case 12:
      for (int64_t i = 0; i < n / 256; ++i) {
        e.base = i * 256;
        blkQ45_K<E, false>(src + i * 144, e, 0);
      }
      return;
    case 13:
      for (int64_t i = 0; i < n / 256; ++i) {
        e.base = i * 256;
        blkQ45_K<E, true>(src + i * 176, e, 0);
      }
      return;
    case 14:
      for (int64_t i = 0; i < n / 256; ++i) {
        e.base = i * 256;
        blkQ6_K(src + i * 210, e, 0);
      }
      return;
    default: return;
  }
#undef RL4QE_Q32
}

struct QStoreSink {
  float* out;
  int64_t base = 0;
  void operator()(int at, QV v) { qstoreu(out + base + at, v); }
  void partial(int at, QV v, int lanes) { qstoreMask(out + base + at, v, lanes); }
};

// Dot products of the decoded row with R rows of x, A accumulators per row (slot chosen by the
// element offset, a constant once the block decoder is inlined).
template <int R, int A>
struct QDotSink {
  const float* x[R];
  int64_t base = 0;
  QV acc[R][A];
  void operator()(int at, QV v) {
    const int s = (at / QW) % A;
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) acc[r][s] = qfma(v, qloadu(x[r] + base + at), acc[r][s]);
  }
  void partial(int at, QV v, int lanes) {
    const int s = (at / QW) % A;
    for (int r = 0; r < R; ++r) acc[r][s] = qfma(v, qloadMask(x[r] + base + at, lanes), acc[r][s]);
  }
};

// out[(i0 + r)·rows + j] (+)= x[i0 + r] · dequant(w)[j] for r < R, without storing the row.
template <int R>
static void qDotRow(const QuantArgs& w, int64_t rowBytes, int64_t j, const float* x, int64_t i0,
                    float* out, bool accumulate) {
#if defined(__AVX512F__)
  constexpr int A = 4;
#else
  constexpr int A = R == 1 ? 4 : (R == 2 ? 2 : 1);
#endif
  QDotSink<R, A> s;
  for (int r = 0; r < R; ++r) {
    s.x[r] = x + (i0 + r) * w.cols;
    for (int a = 0; a < A; ++a) s.acc[r][a] = qzero();
  }
  decodeVec(w.type, w.data + j * rowBytes, w.cols, s);
  for (int r = 0; r < R; ++r) {
    QV t = s.acc[r][0];
    for (int a = 1; a < A; ++a) t = qadd(t, s.acc[r][a]);
    const float v = qsum(t);
    float* o = out + (i0 + r) * w.rows + j;
    *o = accumulate ? *o + v : v;
  }
}
#endif  // vector decoders

// ---- drivers (every ISA) ----------------------------------------------------------------------

static inline int64_t qRowBytes(const QuantArgs& w) {
  int bs = 1, ts = 4;
  quantLayout(w.type, bs, ts);
  return w.cols / bs * ts;
}

/** Rows j0 … j0 + n − 1 of dequant(w) into dst (row r at dst + r·ld). */
static void qDecodeRows(const QuantArgs& w, int64_t rowBytes, int64_t j0, int64_t n, float* dst,
                        int64_t ld) {
  for (int64_t r = 0; r < n; ++r) {
    const uint8_t* src = w.data + (j0 + r) * rowBytes;
#if defined(RL4QE_QVEC)
    if (qHasVec(w.type)) {
      QStoreSink s{dst + r * ld};
      decodeVec(w.type, src, w.cols, s);
      continue;
    }
#endif
    decodeScalar(w.type, src, w.cols, dst + r * ld);
  }
}

// Elements [c0, c1) of row j (c0, c1 whole blocks) into dst.
static void qDecodeRange(const QuantArgs& w, int64_t rowBytes, int64_t j, int64_t c0, int64_t c1,
                         float* dst) {
  int bs = 1, ts = 4;
  quantLayout(w.type, bs, ts);
  const uint8_t* src = w.data + j * rowBytes + c0 / bs * ts;
#if defined(RL4QE_QVEC)
  if (qHasVec(w.type)) {
    QStoreSink s{dst};
    decodeVec(w.type, src, c1 - c0, s);
    return;
  }
#endif
  decodeScalar(w.type, src, c1 - c0, dst);
}

// Weights smaller than this stay on the calling thread (as sgemmSmallMNT's threshold: waking the
// team costs more than streaming a few tens of KiB).
constexpr double kQuantParallelBytes = 64.0 * 1024;
// Float32 panel of decoded rows handed to sgemm for many-row products (4 MiB: decoded, packed and
// consumed while it is still in the L3 cache).
constexpr int64_t kQuantPanelFloats = int64_t(1) << 20;

static int64_t qPanelRows(const QuantArgs& w) {
  int64_t p = std::max<int64_t>(1, kQuantPanelFloats / std::max<int64_t>(1, w.cols));
  if (p >= 2 * NR) p = p / NR * NR;
  return std::min<int64_t>(p, w.rows);
}

static void qDecodePanel(const QuantArgs& w, int64_t rowBytes, int64_t p0, int64_t np, float* panel) {
  const bool par = !omp_in_parallel() && (double)np * rowBytes >= kQuantParallelBytes && np > 1;
#pragma omp parallel for num_threads(numThreads()) schedule(static) if (par)
  for (int64_t r = 0; r < np; ++r) qDecodeRows(w, rowBytes, p0 + r, 1, panel + r * w.cols, w.cols);
}

static void qmatmul(const float* x, const QuantArgs& w, float* out, int64_t m, bool accumulate) {
  const int64_t n = w.rows, k = w.cols;
  if (m <= 0 || n <= 0) return;
  if (k == 0) {  // empty sums (and no zero-sized scratch)
    if (!accumulate) std::memset(out, 0, sizeof(float) * (size_t)(m * n));
    return;
  }
  const int64_t rowBytes = qRowBytes(w);
  if (m > kSmallM) {
    // Many rows (prefill, training): panels of decoded rows through the packed sgemm; each panel
    // writes its block of columns of out.
    const int64_t P = qPanelRows(w);
    float* panel = scratch(Scratch::QuantPanel, (size_t)(P * k));
    for (int64_t p0 = 0; p0 < n; p0 += P) {
      const int64_t np = std::min<int64_t>(P, n - p0);
      qDecodePanel(w, rowBytes, p0, np, panel);
      SgemmArgs g{};
      g.m = m, g.n = np, g.k = k;
      g.transA = false, g.transB = true;
      g.a = x, g.lda = k, g.b = panel, g.ldb = k;
      g.c = out + p0, g.ldc = n;
      g.alpha = 1.0f, g.accumulate = accumulate;
      sgemm(g);
    }
    return;
  }
  // Few rows (decoding): bound by reading w; rows of w are split over the team, each output is
  // one thread's sum in a fixed order (the same whatever the thread count).
  const int threads =
      omp_in_parallel() || (double)n * rowBytes < kQuantParallelBytes ? 1 : numThreads();
#if defined(RL4QE_QVEC)
  if (m <= 4 && qHasVec(w.type)) {
    // guided: when another process holds a core, the thread that runs takes more of the rows
    // (which thread sums a row does not change its result).
#pragma omp parallel for num_threads(threads) schedule(guided, 8) if (threads > 1)
    for (int64_t j = 0; j < n; ++j) {
      switch (m) {
        case 1: qDotRow<1>(w, rowBytes, j, x, 0, out, accumulate); break;
        case 2: qDotRow<2>(w, rowBytes, j, x, 0, out, accumulate); break;
        case 3: qDotRow<3>(w, rowBytes, j, x, 0, out, accumulate); break;
        default: qDotRow<4>(w, rowBytes, j, x, 0, out, accumulate); break;
      }
    }
    return;
  }
#endif
  // Decode four rows of w into a per-thread buffer, then the f32 small-M block kernel on it.
  const int64_t jBlocks = (n + 3) / 4;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    float* buf = scratch(Scratch::QuantRows, (size_t)(4 * k));
#pragma omp for schedule(guided, 2)
    for (int64_t jb = 0; jb < jBlocks; ++jb) {
      const int64_t j0 = jb * 4;
      const int nc = (int)std::min<int64_t>(4, n - j0);
      qDecodeRows(w, rowBytes, j0, nc, buf, k);
      SgemmArgs g{};
      g.m = m, g.n = nc, g.k = k;
      g.transA = false, g.transB = true;
      g.a = x, g.lda = k, g.b = buf, g.ldb = k;
      g.c = out + j0, g.ldc = n;
      g.alpha = 1.0f, g.accumulate = accumulate;
      int64_t i0 = 0;
      for (; i0 + 4 <= m; i0 += 4) smallBlock<4>(g, i0, 0, nc);
      switch (m - i0) {
        case 3: smallBlock<3>(g, i0, 0, nc); break;
        case 2: smallBlock<2>(g, i0, 0, nc); break;
        case 1: smallBlock<1>(g, i0, 0, nc); break;
        default: break;
      }
    }
  }
}

static void qmatmulT(const float* gy, const QuantArgs& w, float* out, int64_t m, bool accumulate) {
  const int64_t n = w.rows, k = w.cols;
  if (m <= 0 || k <= 0) return;
  const int64_t rowBytes = qRowBytes(w);
  if (n == 0) {
    if (!accumulate) std::memset(out, 0, sizeof(float) * (size_t)(m * k));
    return;
  }
  if (m > kSmallM) {
    // out (+)= Σ over panels: g[:, panel rows] · panel, the first panel honouring `accumulate`.
    const int64_t P = qPanelRows(w);
    float* panel = scratch(Scratch::QuantPanel, (size_t)(P * k));
    for (int64_t p0 = 0; p0 < n; p0 += P) {
      const int64_t np = std::min<int64_t>(P, n - p0);
      qDecodePanel(w, rowBytes, p0, np, panel);
      SgemmArgs g{};
      g.m = m, g.n = k, g.k = np;
      g.transA = false, g.transB = false;
      g.a = gy + p0, g.lda = n, g.b = panel, g.ldb = k;
      g.c = out, g.ldc = k;
      g.alpha = 1.0f, g.accumulate = accumulate || p0 > 0;
      sgemm(g);
    }
    return;
  }
  // Few rows: the columns (whole blocks) are split over the team; each thread decodes its range
  // of every row, a chunk at a time, and adds g[i, j] · row into the m outputs (no reduction
  // between threads: each output is summed over j in order).
  int bs = 1, ts = 4;
  quantLayout(w.type, bs, ts);
  const int64_t unit = bs == 1 ? 64 : bs;
  const int64_t units = (k + unit - 1) / unit;
  const int64_t chunkUnits = std::max<int64_t>(1, 1024 / unit);
  const int threads =
      omp_in_parallel() || (double)n * rowBytes < kQuantParallelBytes ? 1 : numThreads();
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const int nt = omp_get_num_threads(), tid = omp_get_thread_num();
    const int64_t u0 = units * tid / nt, u1 = units * (tid + 1) / nt;
    float* buf = scratch(Scratch::QuantRows, (size_t)(chunkUnits * unit));
    for (int64_t ua = u0; ua < u1; ua += chunkUnits) {
      const int64_t c0 = ua * unit, c1 = std::min<int64_t>(k, std::min(u1, ua + chunkUnits) * unit);
      if (!accumulate)
        for (int64_t i = 0; i < m; ++i) std::memset(out + i * k + c0, 0, sizeof(float) * (size_t)(c1 - c0));
      for (int64_t j = 0; j < n; ++j) {
        qDecodeRange(w, rowBytes, j, c0, c1, buf);
        for (int64_t i = 0; i < m; ++i) {
          const float gij = gy[i * n + j];
          if (gij != 0.0f) axpy(out + i * k + c0, gij, buf, c1 - c0);
        }
      }
    }
  }
}

static void qembedding(const QuantArgs& w, const int32_t* ids, int64_t count, float* out) {
  if (count <= 0 || w.cols <= 0) return;
  const int64_t rowBytes = qRowBytes(w);
  const bool par = !omp_in_parallel() && count > 1 && (double)count * rowBytes >= kQuantParallelBytes;
#pragma omp parallel for num_threads(numThreads()) schedule(static) if (par)
  for (int64_t i = 0; i < count; ++i) qDecodeRows(w, rowBytes, ids[i], 1, out + i * w.cols, w.cols);
}
