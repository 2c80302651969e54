// Quantised small-M products with int8 dot products (AVX512-VNNI vpdpbusd), the kernel set
// "avx512vnni": the avx512 set (gemm_avx512.cc) plus qmatmulInt8 (any m, in chunks of
// kInt8MaxM rows), which the addon runs where the caller allows it (decoding steps; qmatmul itself
// stays the float path).
//
// As llama.cpp's q8 path: each row of x is quantised per block of 32 (q8_0; 256 for the K-quants,
// as q8_K) to int8 (scale dx = amax / 127, round to nearest), the weight block's quants are taken as unsigned bytes, and
// vpdpbusd sums 4 byte products per 32-bit lane. Per lane (4 consecutive elements, always inside
// one weight (sub-)block and one x block):
//   Σ w·x ≈ d_w · dx · Σ (q − off) · qx + min_w · dx · Σ qx
// where off is the format's zero point (8 for Q4_0, 16 for Q5_0, 32 for Q6_K, 128 for Q8_0 whose
// signed quants are flipped to q + 128) and min_w its added minimum (Q4_1, Q5_1, Q4_K, Q5_K). The
// −off · Σ qx term is integer and starts the vpdpbusd accumulator; dx · Σ qx per lane is
// precomputed once per row of x. The weight is never decoded to float. The K-quants sum a whole
// 256-element block in int32 (each sub-block's dot times its integer scale) and convert once.
//
// Error: the only approximation is x → qx · dx (|x − qx·dx| ≤ dx / 2 per element), so per output
// |y_int8 − y_float| ≤ Σ_{x blocks b} (dx_b / 2) · Σ_{i∈b} |w_i| plus float32 rounding: the tolerance
// test/quant-conformance.test.ts checks against the float path (the avx512 set, the reference).
// Each output is one thread's sum in a fixed order: the same whatever the thread count.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels.h"

namespace rl4qe {
namespace vnni {

#define RL4QE_VINL static inline __attribute__((always_inline))

// Rows of x per pass over the weight (larger m: several passes).
constexpr int64_t kInt8MaxM = 16;
// Weights smaller than this stay on the calling thread (quant_impl.h's kQuantParallelBytes).
constexpr double kParallelBytes = 64.0 * 1024;

static inline float half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

/** Zero point and whether there is an added minimum, per ggml type; false: no int8 path. */
static bool int8Layout(int type, int& off, bool& hasMin) {
  switch (type) {
    case 2: off = 8, hasMin = false; return true;    // Q4_0
    case 3: off = 0, hasMin = true; return true;     // Q4_1
    case 6: off = 16, hasMin = false; return true;   // Q5_0
    case 7: off = 0, hasMin = true; return true;     // Q5_1
    case 8: off = 128, hasMin = false; return true;  // Q8_0
    case 12: off = 0, hasMin = true; return true;    // Q4_K
    case 13: off = 0, hasMin = true; return true;    // Q5_K
    case 14: off = 32, hasMin = false; return true;  // Q6_K
    default: return false;
  }
}

/** One quantised row of x: k int8 quants and, per lane of 4 elements, k / 4 entries of each. */
struct XRow {
  const int8_t* q;
  const float* dl;       // dx of the lane's block
  const float* sf;       // dx · Σ qx over the lane
  const int32_t* init;   // −off · Σ qx over the lane
  const int32_t* bs32;   // Σ qx over each 32 elements (k / 32 entries)
};

// Quantises m rows of x [m, k] (k a multiple of qb) into buf, one scale per qb elements (32: as
// llama.cpp's q8_0 blocks; 256 for the K-quants: as its q8_K, so that a whole super-block sums in
// int32 with the weight's integer sub-block scales); returns the rows' views.
static void quantizeRows(const float* x, int64_t m, int64_t k, int64_t qb, int off, uint8_t* buf,
                         XRow* rows) {
  const int64_t lanes = k / 4;
  const __m256i ones = _mm256_set1_epi8(1);
  for (int64_t i = 0; i < m; ++i) {
    int8_t* q = reinterpret_cast<int8_t*>(buf + i * k * 5);
    float* dl = reinterpret_cast<float*>(q + k);
    float* sf = dl + lanes;
    int32_t* init = reinterpret_cast<int32_t*>(sf + lanes);
    int32_t* bs32 = init + lanes;
    rows[i] = {q, dl, sf, init, bs32};
    const float* xr = x + i * k;
    for (int64_t b0 = 0; b0 < k; b0 += qb) {
      __m512 mx = _mm512_setzero_ps(), nf = _mm512_setzero_ps();
      for (int64_t e = b0; e < b0 + qb; e += 16) {
        const __m512 v = _mm512_loadu_ps(xr + e);
        mx = _mm512_max_ps(mx, _mm512_abs_ps(v));
        nf = _mm512_add_ps(nf, _mm512_mul_ps(v, _mm512_setzero_ps()));
      }
      const float amax = _mm512_reduce_max_ps(mx);
      // x·0 is NaN exactly for inf/NaN: such a block gets a NaN scale, so its outputs are NaN
      // (as the float path's would be non-finite) instead of quietly finite.
      const bool finite = _mm512_reduce_add_ps(nf) == 0.0f;
      const float d = finite ? amax / 127.0f : NAN;
      const float id = finite && amax > 0.0f ? 127.0f / amax : 0.0f;
      const __m512 s = _mm512_set1_ps(id);
      const __m256 dv = _mm256_set1_ps(d);
      for (int64_t b = b0 / 32; b < (b0 + qb) / 32; ++b) {
        const __m512 v0 = _mm512_loadu_ps(xr + 32 * b), v1 = _mm512_loadu_ps(xr + 32 * b + 16);
        const __m128i q0 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v0, s)));
        const __m128i q1 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v1, s)));
        const __m256i qq = _mm256_inserti128_si256(_mm256_castsi128_si256(q0), q1, 1);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 32 * b), qq);
        const __m256i s4 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ones, qq);
        _mm256_storeu_ps(dl + 8 * b, dv);
        _mm256_storeu_ps(sf + 8 * b, _mm256_mul_ps(dv, _mm256_cvtepi32_ps(s4)));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(init + 8 * b),
                            _mm256_mullo_epi32(s4, _mm256_set1_epi32(-off)));
        const __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s4), _mm256_extracti128_si256(s4, 1));
        const __m128i h2 = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
        bs32[b] = _mm_cvtsi128_si32(_mm_add_epi32(h2, _mm_shuffle_epi32(h2, 0xb1)));
      }
    }
  }
}

// One chunk of 64 elements (chunk index c of the row): W the unsigned quants, SD the weight scale
// per lane, MN its minimum per lane (MIN formats); `half` chunks hold only 32 elements (the last
// block of a 32-block row with an odd block count: lanes 8…15 are masked off).
template <int R, bool MIN, bool HALF = false>
RL4QE_VINL void step(const XRow* x, int64_t c, __m512i W, __m512 SD, __m512 MN, __m512* acc) {
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    __m512i X, I;
    __m512 DL, SF;
    if (HALF) {
      X = _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[r].q + 64 * c)));
      // The formats with a minimum have no zero point (their init is 0).
      I = MIN ? _mm512_setzero_si512()
              : _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[r].init + 16 * c)));
      DL = _mm512_zextps256_ps512(_mm256_loadu_ps(x[r].dl + 16 * c));
      SF = MIN ? _mm512_zextps256_ps512(_mm256_loadu_ps(x[r].sf + 16 * c)) : _mm512_setzero_ps();
    } else {
      X = _mm512_loadu_si512(x[r].q + 64 * c);
      I = MIN ? _mm512_setzero_si512() : _mm512_loadu_si512(x[r].init + 16 * c);
      DL = _mm512_loadu_ps(x[r].dl + 16 * c);
      SF = MIN ? _mm512_loadu_ps(x[r].sf + 16 * c) : _mm512_setzero_ps();
    }
    I = _mm512_dpbusd_epi32(I, W, X);
    acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(I), _mm512_mul_ps(SD, DL), acc[r]);
    if (MIN) acc[r] = _mm512_fmadd_ps(MN, SF, acc[r]);
  }
}

RL4QE_VINL __m512 pair(float a, float b) {
  return _mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1);
}
// 16 quant bytes of a 4-bit block → 32 nibbles in element order (low nibbles first).
RL4QE_VINL __m256i nibbles(const uint8_t* p) {
  const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(a), _mm_srli_epi16(a, 4), 1);
  return _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
}
RL4QE_VINL __m512i join(__m256i lo, __m256i hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}
RL4QE_VINL uint32_t ld32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The 32-element formats: 2 blocks per chunk. QOFF is the quants' byte offset in the block, HOFF
// that of the 32 fifth bits (Q5_*; −1: none), MOFF that of the minimum (−1: none).
template <int R, int TS, int QOFF, int HOFF, int MOFF, bool Q8>
static void row32(const uint8_t* row, int64_t k, const XRow* x, __m512* acc) {
  const int64_t nb = k / 32;
  constexpr bool MIN = MOFF >= 0;
  auto quants = [](const uint8_t* b) -> __m256i {
    if (Q8)
      return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + QOFF)),
                              _mm256_set1_epi8((char)0x80));
    __m256i v = nibbles(b + QOFF);
    if (HOFF >= 0) v = _mm256_mask_add_epi8(v, (__mmask32)ld32(b + HOFF), v, _mm256_set1_epi8(16));
    return v;
  };
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    const uint8_t* a = row + i * TS;
    const uint8_t* b = a + TS;
    const __m512i W = join(quants(a), quants(b));
    const __m512 SD = pair(half(a), half(b));
    const __m512 MN = MIN ? pair(half(a + MOFF), half(b + MOFF)) : _mm512_setzero_ps();
    step<R, MIN>(x, i / 2, W, SD, MN, acc);
  }
  if (i < nb) {
    const uint8_t* a = row + i * TS;
    const __m512i W = _mm512_zextsi256_si512(quants(a));
    const __m512 SD = _mm512_set1_ps(half(a));
    const __m512 MN = MIN ? _mm512_set1_ps(half(a + MOFF)) : _mm512_setzero_ps();
    step<R, MIN, true>(x, i / 2, W, SD, MN, acc);
  }
}

// Q4_K / Q5_K: 256-element blocks of 8 sub-blocks of 32, each with its 6-bit scale and minimum;
// chunk t of a block: sub-blocks 2t (low nibbles of 32 bytes) and 2t + 1 (their high nibbles).
// x has one scale per 256 (q8_K), so the block sums in int32 (dot · integer sub-block scale) and
// goes to float once; the minimum term is dmin · dx · Σ_j mn_j · Σ_{sub-block j} qx.
template <int R, bool K5>
static void rowQ45K(const uint8_t* row, int64_t k, const XRow* x, __m512* acc, __m256* macc) {
  constexpr int TS = K5 ? 176 : 144;
  const __m512i m4 = _mm512_set1_epi8(0x0f), k16 = _mm512_set1_epi8(16);
  for (int64_t i = 0; i < k / 256; ++i) {
    const uint8_t* b = row + i * TS;
    const float d = half(b), dmin = half(b + 2);
    // The 8 six-bit scales and mins (get_scale_min_k4) unpacked at once: bytes 0…7 scales, 8…15
    // mins (the 32-bit trick of llama.cpp's k-quant dot products).
    uint32_t u[4];
    std::memcpy(u, b + 4, 12);
    u[3] = ((u[2] >> 4) & 0x0f0f0f0fu) | (((u[1] >> 6) & 0x03030303u) << 4);
    const uint32_t u1 = u[1] & 0x3f3f3f3fu;
    u[1] = (u[2] & 0x0f0f0f0fu) | (((u[0] >> 6) & 0x03030303u) << 4);
    u[2] = u1;
    u[0] &= 0x3f3f3f3fu;
    const __m128i smv = _mm_loadu_si128(reinterpret_cast<const __m128i*>(u));
    const __m512i SCM = _mm512_cvtepu8_epi32(smv);  // lanes 0…7 scales, 8…15 mins
    const __m256i MN = _mm256_cvtepu8_epi32(_mm_srli_si128(smv, 8));
    const uint8_t* q = b + (K5 ? 48 : 16);
    __m256i H = _mm256_setzero_si256();
    if (K5) H = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16));
    __m512i sumi[R];
    for (int r = 0; r < R; ++r) sumi[r] = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int t = 0; t < 4; ++t) {
      const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * t));
      __m512i W = _mm512_and_si512(join(a, _mm256_srli_epi16(a, 4)), m4);
      if (K5) {
        const __mmask64 lo = _mm256_test_epi8_mask(H, _mm256_set1_epi8((char)(1 << (2 * t))));
        const __mmask64 hi = _mm256_test_epi8_mask(H, _mm256_set1_epi8((char)(2 << (2 * t))));
        W = _mm512_mask_add_epi8(W, lo | (hi << 32), W, k16);
      }
      const __m512i SC = _mm512_permutexvar_epi32(
          _mm512_inserti64x4(_mm512_set1_epi32(2 * t), _mm256_set1_epi32(2 * t + 1), 1), SCM);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const __m512i X = _mm512_loadu_si512(x[r].q + 256 * i + 64 * t);
        const __m512i I = _mm512_dpbusd_epi32(_mm512_setzero_si512(), W, X);
        sumi[r] = _mm512_add_epi32(sumi[r], _mm512_mullo_epi32(I, SC));
      }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const float dx = x[r].dl[64 * i];
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi[r]), _mm512_set1_ps(d * dx), acc[r]);
      const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[r].bs32 + 8 * i));
      macc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_mullo_epi32(MN, bs)),
                                _mm256_set1_ps(dmin * dx), macc[r]);
    }
  }
}

// Q6_K: 256-element blocks, two halves of 128 from 64 bytes of low nibbles and 32 of high bits
// (as quant_impl.h's AVX-512 decoder), a signed 8-bit scale per 16 elements; x per 256 (q8_K), the
// −32 zero point in the vpdpbusd accumulator, the block summed in int32.
template <int R>
static void rowQ6K(const uint8_t* row, int64_t k, const XRow* x, __m512* acc) {
  const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
  const __m512i s42 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
  const __m512i s02 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
  const __m128i rep0 = _mm_setr_epi8(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  const __m128i rep1 = _mm_setr_epi8(4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7);
  for (int64_t i = 0; i < k / 256; ++i) {
    const uint8_t* b = row + i * 210;
    const float d = half(b + 208);
    __m512i sumi[R];
    for (int r = 0; r < R; ++r) sumi[r] = _mm512_setzero_si512();
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m512i Q = _mm512_loadu_si512(b + 64 * h);
      const __m512i Hb = _mm512_broadcast_i64x4(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 128 + 32 * h)));
      const __m512i lo = _mm512_or_si512(_mm512_and_si512(Q, m4),
                                         _mm512_and_si512(_mm512_sllv_epi16(Hb, s42), m30));
      const __m512i hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(Q, 4), m4),
                                         _mm512_and_si512(_mm512_srlv_epi16(Hb, s02), m30));
      uint64_t s8;
      std::memcpy(&s8, b + 192 + 8 * h, 8);
      const __m128i sv = _mm_cvtsi64_si128((long long)s8);
      const __m512i S0 = _mm512_cvtepi8_epi32(_mm_shuffle_epi8(sv, rep0));
      const __m512i S1 = _mm512_cvtepi8_epi32(_mm_shuffle_epi8(sv, rep1));
      const int64_t c = 4 * i + 2 * h;
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const __m512i I0 = _mm512_dpbusd_epi32(_mm512_loadu_si512(x[r].init + 16 * c), lo,
                                               _mm512_loadu_si512(x[r].q + 64 * c));
        const __m512i I1 = _mm512_dpbusd_epi32(_mm512_loadu_si512(x[r].init + 16 * c + 16), hi,
                                               _mm512_loadu_si512(x[r].q + 64 * c + 64));
        sumi[r] = _mm512_add_epi32(sumi[r], _mm512_add_epi32(_mm512_mullo_epi32(I0, S0),
                                                             _mm512_mullo_epi32(I1, S1)));
      }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi[r]), _mm512_set1_ps(d * x[r].dl[64 * i]), acc[r]);
  }
}

template <int R>
static void rowDot(int type, const uint8_t* row, int64_t k, const XRow* x, float* sums) {
  __m512 acc[R];
  __m256 macc[R];  // the K-quants' minimum terms
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps(), macc[r] = _mm256_setzero_ps();
  switch (type) {
    case 2: row32<R, 18, 2, -1, -1, false>(row, k, x, acc); break;
    case 3: row32<R, 20, 4, -1, 2, false>(row, k, x, acc); break;
    case 6: row32<R, 22, 6, 2, -1, false>(row, k, x, acc); break;
    case 7: row32<R, 24, 8, 4, 2, false>(row, k, x, acc); break;
    case 8: row32<R, 34, 2, -1, -1, true>(row, k, x, acc); break;
    case 12: rowQ45K<R, false>(row, k, x, acc, macc); break;
    case 13: rowQ45K<R, true>(row, k, x, acc, macc); break;
    case 14: rowQ6K<R>(row, k, x, acc); break;
    default: break;
  }
  for (int r = 0; r < R; ++r)
    sums[r] = _mm512_reduce_add_ps(_mm512_sub_ps(acc[r], _mm512_zextps256_ps512(macc[r])));
}

static void qmatmul(const float* x, const QuantArgs& w, float* out, int64_t m, bool accumulate) {
  int off = 0, bs = 0, ts = 0;
  bool hasMin = false;
  const int64_t n = w.rows, k = w.cols;
  if (m <= 0 || k <= 0 || n <= 0 || !int8Layout(w.type, off, hasMin) || !quantLayout(w.type, bs, ts)) {
    tableAvx512()->qmatmul(x, w, out, m, accumulate);
    return;
  }
  if (m > kInt8MaxM) {
    // Chunks of kInt8MaxM rows: each row's result depends on that row alone, so a decoding
    // step's tokens do not depend on how many sequences share it.
    for (int64_t i0 = 0; i0 < m; i0 += kInt8MaxM)
      qmatmul(x + i0 * k, w, out + i0 * n, std::min<int64_t>(kInt8MaxM, m - i0), accumulate);
    return;
  }
  const int64_t rowBytes = k / bs * ts;
  // Per row of x: k bytes of quants, 3 · k / 4 lane entries and k / 32 sums of 4 bytes (< 5k).
  uint8_t* buf = reinterpret_cast<uint8_t*>(scratch(Scratch::Int8Activations, (size_t)(m * k * 5 + 3) / 4));
  XRow xs[kInt8MaxM];
  quantizeRows(x, m, k, bs == 256 ? 256 : 32, off, buf, xs);
  const int threads = omp_in_parallel() || (double)n * rowBytes < kParallelBytes ? 1 : numThreads();
  // guided: when another process holds a core, the thread that runs takes more of the rows.
#pragma omp parallel for num_threads(threads) schedule(guided, 8) if (threads > 1)
  for (int64_t j = 0; j < n; ++j) {
    const uint8_t* row = w.data + j * rowBytes;
    float sums[4];
    for (int64_t i0 = 0; i0 < m; i0 += 4) {
      const int R = (int)std::min<int64_t>(4, m - i0);
      switch (R) {
        case 1: rowDot<1>(w.type, row, k, xs + i0, sums); break;
        case 2: rowDot<2>(w.type, row, k, xs + i0, sums); break;
        case 3: rowDot<3>(w.type, row, k, xs + i0, sums); break;
        default: rowDot<4>(w.type, row, k, xs + i0, sums); break;
      }
      for (int r = 0; r < R; ++r) {
        float* o = out + (i0 + r) * n + j;
        *o = accumulate ? *o + sums[r] : sums[r];
      }
    }
  }
}

}  // namespace vnni

const KernelTable* tableAvx512Vnni() {
  static const KernelTable t = [] {
    KernelTable v = *tableAvx512();
    v.name = "avx512vnni";
    v.qmatmulInt8 = vnni::qmatmul;
    v.int8MaxM = (int)vnni::kInt8MaxM;
    v.units = "fp32 FMA on 512-bit vectors (AVX-512F); int8 dot products (AVX512-VNNI vpdpbusd) "
              "for quantised weights in decoding steps";
    return v;
  }();
  return &t;
}

}  // namespace rl4qe
