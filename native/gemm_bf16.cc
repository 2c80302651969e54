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

// C[rows × nr] (ldc) = alpha · Σ_p A[p] · B[p] (+ C when beta) over kpairs pairs. A is a packed
// panel: word [p][r] = (a(r, 2p), a(r, 2p+1)), MR words per pair, so the ROWS broadcasts of a pair
// come from one 48-byte run instead of ROWS rows far apart; B a packB micro-panel, NR per pair.
template <int ROWS>
static inline void micro(int64_t kpairs, const uint32_t* A, const uint32_t* B, float* C,
                         int64_t ldc, float alpha, bool beta, int nr) {
  __m512 c0[ROWS], c1[ROWS];
  for (int r = 0; r < ROWS; ++r) c0[r] = _mm512_setzero_ps(), c1[r] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kpairs; ++p) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(B + p * NR);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(B + p * NR + 16);
    const uint32_t* a = A + p * MR;
#pragma GCC unroll 12
    for (int r = 0; r < ROWS; ++r) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[r]);
      c0[r] = _mm512_dpbf16_ps(c0[r], av, b0);
      c1[r] = _mm512_dpbf16_ps(c1[r], av, b1);
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

// Blocking (Goto/BLIS): a task owns a block of at most MC rows of C and a range of B's column
// panels. For each k-block of at most KCP pairs it converts its rows of A to bf16 into MR-row
// panels (MC × KCP words, 48 KiB: L2) and sweeps its column panels; for each panel the B
// micro-panel (KCP × NR words, 16 KiB: L1) serves every MR-row tile of the block. The first
// version (no A panels, no row blocks: every tile read its 12 rows of the whole converted A from
// L3) ran at 0.7–1.3× the fp32 GEMM on the projection shapes; its 1-thread peak is ~1.8×.
constexpr int64_t MC = 8 * MR;
constexpr int64_t KCP_BLOCK = 128;

/**
 * C = alpha · op(A) · B (+ C when accumulate), B packed by packB for (k, n). A is m × k
 * (transA: k × m) fp32, rounded to bf16 here. Every C tile sums its k-blocks in order, whatever
 * the thread count.
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
  const int64_t kblocks = (kp + KCP_BLOCK - 1) / KCP_BLOCK;
  const int64_t kc = (kp + kblocks - 1) / kblocks;  // equal k-blocks
  const int64_t mblocks = (m + MC - 1) / MC, panels = (n + NR - 1) / NR;
  const int threads = omp_in_parallel() || (double)m * n * k <= 4e6 ? 1 : numThreads();
  // Too few row blocks for the team: split the column panels as well.
  const int64_t jsplit = std::min<int64_t>(panels, std::max<int64_t>(1, (2 * threads + mblocks - 1) / mblocks));
  const int64_t jchunk = (panels + jsplit - 1) / jsplit;
  const int64_t tasks = mblocks * jsplit;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    std::vector<uint32_t> apack((size_t)(MC * kc + 16));
    std::vector<float> row((size_t)(2 * kc + 32));
    std::vector<uint16_t> half((size_t)(2 * kc + 64));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t ib = t / jsplit, i0 = ib * MC, mb = std::min<int64_t>(MC, m - i0);
      const int64_t j0 = (t % jsplit) * jchunk, j1 = std::min<int64_t>(panels, j0 + jchunk);
      if (j0 >= j1) continue;
      for (int64_t p0 = 0; p0 < kp; p0 += kc) {
        const int64_t kcb = std::min<int64_t>(kc, kp - p0);
        const int64_t q0 = 2 * p0, qn = std::min<int64_t>(2 * kcb, k - q0);  // k-range of the block
        // Pack: rows i0 … i0+mb of op(A), k-range [q0, q0+qn) → bf16 pairs in MR-row panels
        // (rows past mb are zero, so every panel is whole).
        std::memset(apack.data(), 0, sizeof(uint32_t) * (size_t)(((mb + MR - 1) / MR) * MR * kcb));
        for (int64_t r = 0; r < mb; ++r) {
          const float* src;
          if (transA) {
            for (int64_t q = 0; q < qn; ++q) row[(size_t)q] = a[(q0 + q) * lda + i0 + r];
            src = row.data();
          } else {
            src = a + (i0 + r) * lda + q0;
          }
          toBf16(src, qn, half.data());
          const uint32_t* w = reinterpret_cast<const uint32_t*>(half.data());
          uint32_t* dst = apack.data() + (r / MR) * MR * kcb + (r % MR);
          for (int64_t p = 0; p < kcb; ++p) dst[p * MR] = (2 * p < qn) ? w[p] : 0u;
        }
        const bool beta = accumulate || p0 > 0;  // later k-blocks add to C
        for (int64_t jt = j0; jt < j1; ++jt) {
          const uint32_t* B = bp + jt * kp * NR + p0 * NR;
          const int nr = (int)std::min<int64_t>(NR, n - jt * NR);
          for (int64_t it = 0; it * MR < mb; ++it) {
            const int mr = (int)std::min<int64_t>(MR, mb - it * MR);
            const uint32_t* A = apack.data() + it * MR * kcb;
            float* C = c + (i0 + it * MR) * ldc + jt * NR;
            switch (mr) {
#define RL4QE_BF16_CASE(R) \
  case R: micro<R>(kcb, A, B, C, ldc, alpha, beta, nr); break;
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
