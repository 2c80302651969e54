// bf16 GEMM on AVX512-BF16 (vdpbf16ps: 32 bf16 products summed pairwise into 16 fp32 lanes),
// fp32 accumulation, for the `--compute bf16` products of frozen weights and `bench gemm`.
//
// Inputs are rounded to bf16 (round to nearest even, vcvtne2ps2bf16); every product and sum is in
// fp32. B (the frozen weight) is packed once into NR-column panels of k-pairs (packBf16B; the
// caller caches it); A is converted per call into bf16 rows. The micro-kernel holds MR × NR fp32
// accumulators (MR = 12 rows, NR = 32 columns: 24 zmm) and per k-pair broadcasts one 32-bit pair
// of A per row against two zmm of B. Compiled with -mavx512bf16; only called when the CPU has it
// (addon.cc checks). AMX (tile) kernels are not built: no CPU here to test them on.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "kernels.h"

namespace rl4qe {
namespace bf16 {

constexpr int MR = 12, NR = 32;
constexpr int64_t KCP = 384;  // k-pairs per block: a B micro-panel of 48 KiB, A rows 9 KiB each

/** n floats → n rounded bf16 (n padded up to even with a zero), vectorised; dst has ⌈n/2⌉ words. */
static void toBf16(const float* src, int64_t n, uint16_t* dst) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i));
    _mm512_storeu_si512(dst + i, (__m512i)v);
  }
  if (i < n) {
    const int64_t r = n - i;
    const __mmask16 lo = (__mmask16)(r >= 16 ? 0xffff : ((1u << r) - 1u));
    const __mmask16 hi = (__mmask16)(r <= 16 ? 0 : ((1u << (r - 16)) - 1u));
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, src + i + 16),
                                          _mm512_maskz_loadu_ps(lo, src + i));
    const int64_t words = (r + 1) / 2;  // pad to even with the zero already in the vector
    _mm512_mask_storeu_epi16(dst + i, (__mmask32)(words >= 16 ? 0xffffffffu : ((1u << (2 * words)) - 1u)),
                             (__m512i)v);
  }
}

int64_t packedBf16Words(int64_t k, int64_t n) {
  const int64_t kp = (k + 1) / 2, panels = (n + NR - 1) / NR;
  return panels * kp * NR;  // 32-bit words
}

/** Packs op(B) (k × n; transB: B is n × k) into panels: word [panel][kpair][c] = (b(2p, j),
 * b(2p+1, j)) for column j = panel · NR + c (zero beyond n and k). */
void packB(const float* b, int64_t ldb, bool transB, int64_t k, int64_t n, uint32_t* out) {
  const int64_t kp = (k + 1) / 2, panels = (n + NR - 1) / NR;
  std::memset(out, 0, sizeof(uint32_t) * (size_t)packedBf16Words(k, n));
#pragma omp parallel num_threads(numThreads()) if (!omp_in_parallel() && k * n > 65536)
  {
    std::vector<float> col((size_t)k + 2);
    std::vector<uint16_t> cb((size_t)(2 * kp + 32));
#pragma omp for schedule(static)
    for (int64_t j = 0; j < n; ++j) {
      const float* src;
      if (transB) {
        src = b + j * ldb;
      } else {
        for (int64_t p = 0; p < k; ++p) col[(size_t)p] = b[p * ldb + j];
        src = col.data();
      }
      toBf16(src, k, cb.data());
      uint32_t* dst = out + (j / NR) * kp * NR + (j % NR);
      (void)panels;
      const uint32_t* w = reinterpret_cast<const uint32_t*>(cb.data());
      for (int64_t p = 0; p < kp; ++p) dst[p * NR] = w[p];
    }
  }
}

/**
 * The packing of op(B)ᵀ (n × k) from the packing of op(B) (k × n), both as packB lays them out:
 * the bf16 values move, nothing is rounded again, so the two layouts hold the same numbers and
 * the float32 matrix is not needed. A frozen weight W [n, k] is packed as op(B) = Wᵀ for the
 * forward (x·Wᵀ); this gives op(B) = W for the input gradient (dY·W), whose vdpbf16ps pairs
 * must run along W's rows (the sum is over n), not along its columns as in the forward.
 */
void packTransposed(const uint32_t* src, int64_t k, int64_t n, uint32_t* out) {
  const int64_t kp = (k + 1) / 2, kpT = (n + 1) / 2, panelsT = (k + NR - 1) / NR;
  std::memset(out, 0, sizeof(uint32_t) * (size_t)packedBf16Words(n, k));
  const uint16_t* s = reinterpret_cast<const uint16_t*>(src);
  uint16_t* d = reinterpret_cast<uint16_t*>(out);
  // op(B)[p][j] (p < k, j < n) sits at half (p & 1) of word (j / NR)·kp·NR + (p / 2)·NR + j % NR.
  auto at = [&](int64_t p, int64_t j) -> uint16_t {
    return s[2 * ((j / NR) * kp * NR + (p / 2) * NR + j % NR) + (p & 1)];
  };
#pragma omp parallel for num_threads(numThreads()) schedule(static) if (!omp_in_parallel() && k * n > 65536)
  for (int64_t P = 0; P < panelsT; ++P) {
    for (int64_t q = 0; q < kpT; ++q) {
      for (int64_t c = 0; c < NR; ++c) {
        const int64_t p = P * NR + c;
        if (p >= k) break;
        uint16_t* w = d + 2 * (P * kpT * NR + q * NR + c);
        w[0] = at(p, 2 * q);
        if (2 * q + 1 < n) w[1] = at(p, 2 * q + 1);
      }
    }
  }
}

// C[mr × nr] (ldc) = alpha · Σ_p A[r] · B (+ C when beta) over kpairs pairs.
template <int ROWS>
static inline void micro(int64_t kpairs, const uint32_t* A, int64_t lda, const uint32_t* B,
                         float* C, int64_t ldc, float alpha, bool beta, int nr) {
  __m512 c0[ROWS], c1[ROWS];
  for (int r = 0; r < ROWS; ++r) c0[r] = _mm512_setzero_ps(), c1[r] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kpairs; ++p) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(B + p * NR);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(B + p * NR + 16);
#pragma GCC unroll 12
    for (int r = 0; r < ROWS; ++r) {
      const __m512bh a = (__m512bh)_mm512_set1_epi32((int)A[r * lda + p]);
      c0[r] = _mm512_dpbf16_ps(c0[r], a, b0);
      c1[r] = _mm512_dpbf16_ps(c1[r], a, b1);
    }
  }
  const __m512 al = _mm512_set1_ps(alpha);
  const __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xffff : ((1u << nr) - 1u));
  const __mmask16 m1 = (__mmask16)(nr <= 16 ? 0 : nr >= 32 ? 0xffff : ((1u << (nr - 16)) - 1u));
  for (int r = 0; r < ROWS; ++r) {
    float* c = C + r * ldc;
    __m512 v0 = _mm512_mul_ps(c0[r], al), v1 = _mm512_mul_ps(c1[r], al);
    if (beta) {
      v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, c));
      v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, c + 16));
    }
    _mm512_mask_storeu_ps(c, m0, v0);
    _mm512_mask_storeu_ps(c + 16, m1, v1);
  }
}

/**
 * C = alpha · op(A) · B (+ C when accumulate), B packed by packB for (k, n). A is m × k
 * (transA: k × m) fp32, rounded to bf16 here.
 */
void gemmPacked(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, bool transA,
                const uint32_t* bp, float* c, int64_t ldc, float alpha, bool accumulate) {
  if (m <= 0 || n <= 0) return;
  const int64_t kp = (k + 1) / 2;
  if (kp == 0) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = accumulate ? c[i * ldc + j] : 0.0f;
    return;
  }
  // A as bf16 rows of kp pairs (one 32-bit word per pair).
  std::vector<uint32_t> abuf((size_t)(m * kp + 16));
  const bool par = !omp_in_parallel() && (double)m * n * k > 4e6;
#pragma omp parallel num_threads(numThreads()) if (par)
  {
    std::vector<float> row((size_t)k + 2);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < m; ++i) {
      const float* src;
      if (transA) {
        for (int64_t p = 0; p < k; ++p) row[(size_t)p] = a[p * lda + i];
        src = row.data();
      } else {
        src = a + i * lda;
      }
      toBf16(src, k, reinterpret_cast<uint16_t*>(abuf.data() + i * kp));
    }
    const int64_t mt = (m + MR - 1) / MR, nt = (n + NR - 1) / NR;
    // Tiles of MR × NR over the team; the k-blocks of one tile run in order (its sum's order is
    // fixed, whatever the thread count).
#pragma omp for collapse(2) schedule(static)
    for (int64_t jt = 0; jt < nt; ++jt) {
      for (int64_t it = 0; it < mt; ++it) {
        const int64_t i0 = it * MR, j0 = jt * NR;
        const int mr = (int)std::min<int64_t>(MR, m - i0), nr = (int)std::min<int64_t>(NR, n - j0);
        const uint32_t* B = bp + jt * kp * NR;
        for (int64_t p0 = 0; p0 < kp; p0 += KCP) {
          const int64_t kc = std::min<int64_t>(KCP, kp - p0);
          // Later k-blocks add alpha · their partial sum to C.
          const bool beta = accumulate || p0 > 0;
          const uint32_t* A = abuf.data() + i0 * kp + p0;
          float* C = c + i0 * ldc + j0;
          switch (mr) {
#define RL4QE_BF16_CASE(R) \
  case R: micro<R>(kc, A, kp, B + p0 * NR, C, ldc, alpha, beta, nr); break;
            RL4QE_BF16_CASE(1) RL4QE_BF16_CASE(2) RL4QE_BF16_CASE(3) RL4QE_BF16_CASE(4)
            RL4QE_BF16_CASE(5) RL4QE_BF16_CASE(6) RL4QE_BF16_CASE(7) RL4QE_BF16_CASE(8)
            RL4QE_BF16_CASE(9) RL4QE_BF16_CASE(10) RL4QE_BF16_CASE(11) RL4QE_BF16_CASE(12)
#undef RL4QE_BF16_CASE
            default: break;
          }
        }
      }
    }
  }
}

/** Measured vdpbf16ps peak over `threads` threads in GFLOP/s (2 flops per bf16 product). */
double peak(double seconds, int threads) {
  double total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
  {
    __m512 acc[12];
    for (int r = 0; r < 12; ++r) acc[r] = _mm512_set1_ps(0.0f);
    const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80), b = (__m512bh)_mm512_set1_epi32(0x00010001);
    const auto t0 = std::chrono::steady_clock::now();
    int64_t iters = 0;
    double el = 0;
    do {
      for (int it = 0; it < 1000; ++it) {
#pragma GCC unroll 12
        for (int r = 0; r < 12; ++r) acc[r] = _mm512_dpbf16_ps(acc[r], a, b);
      }
      iters += 1000;
      el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } while (el < seconds);
    float sink = 0;
    for (int r = 0; r < 12; ++r) sink += _mm512_reduce_add_ps(acc[r]);
    if (sink == 12345.0f) total += 1e-30;  // keep the loop
    total += (double)iters * 12 * 64 / el / 1e9;
  }
  return total;
}

}  // namespace bf16
}  // namespace rl4qe
