// The compute-heavy kernels, compiled once per instruction set (gemm_generic.cc, gemm_avx2.cc,
// gemm_avx512.cc include this file with RL4QE_ISA naming the namespace and their own -m flags).
// Everything here lives in namespace rl4qe::RL4QE_ISA so the copies never collide at link time.
//
// GEMM: Goto/BLIS-style. B (K×N, or a block of columns when very wide) is packed into NR-wide
// panels of k-blocks of at most KC, shared by the team (each thread packs some, then one
// barrier); each thread packs its own MC×KC blocks of A into MR-tall panels and runs the MR×NR
// register-blocked micro-kernel over its part of C. The thread grid (rows × columns of C) is
// chosen per call to balance whole tiles.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <ctime>

#include "exp_poly.h"
#include "kernels.h"
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#ifndef RL4QE_ISA
#error "define RL4QE_ISA before including isa_impl.h"
#endif

namespace rl4qe {
namespace RL4QE_ISA {

#if defined(__AVX512F__)
constexpr int MR = 12, NR = 32;
constexpr const char* kName = "avx512";
#elif defined(__AVX2__) && defined(__FMA__)
constexpr int MR = 6, NR = 16;
constexpr const char* kName = "avx2";
#else
constexpr int MR = 4, NR = 16;
constexpr const char* kName = "generic";
#endif
// K is cut into equal blocks of at most KC. AVX-512: deep blocks (the B micro-panel, KC·NR·4 =
// 96 KiB, and the MC×KC block of A both stream from L2), so each C tile is read and written once
// or twice instead of once per 256 k-steps: 3–6 % more GFLOP/s on Zen 4 for every shape measured
// (256×576×1536 … 2048³, interleaved A/B of two builds), and the A block plus one B panel still
// fit a 1 MiB L2. Other ISAs keep KC·NR·4 bytes of B in L1 (their L2 may be 256 KiB).
#if defined(__AVX512F__)
constexpr int64_t KC = 768;
#else
constexpr int64_t KC = 256;
#endif
constexpr double kParallelFmas = 4.0 * 1024 * 1024;
constexpr int64_t MC = MR * 16;

// ---------------------------------------------------------------------------------------------
// Micro-kernels: acc(MR×NR) = Σ_p Ap[p·MR + r] · Bp[p·NR + c]; then for r < mr, c < nr:
// C[r·ldc + c] = alpha·acc + (beta ? C : 0).

#if defined(__AVX512F__)
static inline void micro(int64_t kc, const float* __restrict A, const float* __restrict B,
                         float* C, int64_t ldc, float alpha, bool beta, int mr, int nr) {
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 12
  for (int r = 0; r < MR; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
  // C is read (beta) or written at the end: start fetching its lines now.
  for (int r = 0; r < mr; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc + 16), _MM_HINT_T0);
  }
#pragma GCC unroll 2
  for (int64_t p = 0; p < kc; ++p) {
    const __m512 b0 = _mm512_load_ps(B);
    const __m512 b1 = _mm512_load_ps(B + 16);
#pragma GCC unroll 12
    for (int r = 0; r < MR; ++r) {
      const __m512 a = _mm512_set1_ps(A[r]);
      c0[r] = _mm512_fmadd_ps(a, b0, c0[r]);
      c1[r] = _mm512_fmadd_ps(a, b1, c1[r]);
    }
    A += MR;
    B += NR;
  }
  const __m512 va = _mm512_set1_ps(alpha);
  if (mr == MR && nr == NR) {
#pragma GCC unroll 12
    for (int r = 0; r < MR; ++r) {
      float* cr = C + r * ldc;
      if (beta) {
        _mm512_storeu_ps(cr, _mm512_fmadd_ps(va, c0[r], _mm512_loadu_ps(cr)));
        _mm512_storeu_ps(cr + 16, _mm512_fmadd_ps(va, c1[r], _mm512_loadu_ps(cr + 16)));
      } else {
        _mm512_storeu_ps(cr, _mm512_mul_ps(va, c0[r]));
        _mm512_storeu_ps(cr + 16, _mm512_mul_ps(va, c1[r]));
      }
    }
    return;
  }
  const __mmask16 m0 = nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1u);
  const __mmask16 m1 = nr >= 32   ? (__mmask16)0xFFFF
                       : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1u)
                                 : (__mmask16)0;
  for (int r = 0; r < mr; ++r) {
    float* cr = C + r * ldc;
    __m512 x0 = _mm512_mul_ps(va, c0[r]);
    __m512 x1 = _mm512_mul_ps(va, c1[r]);
    if (beta) {
      x0 = _mm512_add_ps(x0, _mm512_maskz_loadu_ps(m0, cr));
      x1 = _mm512_add_ps(x1, _mm512_maskz_loadu_ps(m1, cr + 16));
    }
    _mm512_mask_storeu_ps(cr, m0, x0);
    _mm512_mask_storeu_ps(cr + 16, m1, x1);
  }
}
#elif defined(__AVX2__) && defined(__FMA__)
static inline void micro(int64_t kc, const float* __restrict A, const float* __restrict B,
                         float* C, int64_t ldc, float alpha, bool beta, int mr, int nr) {
  __m256 c0[MR], c1[MR];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) c0[r] = c1[r] = _mm256_setzero_ps();
#pragma GCC unroll 2
  for (int64_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_load_ps(B);
    const __m256 b1 = _mm256_load_ps(B + 8);
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      const __m256 a = _mm256_broadcast_ss(A + r);
      c0[r] = _mm256_fmadd_ps(a, b0, c0[r]);
      c1[r] = _mm256_fmadd_ps(a, b1, c1[r]);
    }
    A += MR;
    B += NR;
  }
  const __m256 va = _mm256_set1_ps(alpha);
  if (mr == MR && nr == NR) {
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      float* cr = C + r * ldc;
      if (beta) {
        _mm256_storeu_ps(cr, _mm256_fmadd_ps(va, c0[r], _mm256_loadu_ps(cr)));
        _mm256_storeu_ps(cr + 8, _mm256_fmadd_ps(va, c1[r], _mm256_loadu_ps(cr + 8)));
      } else {
        _mm256_storeu_ps(cr, _mm256_mul_ps(va, c0[r]));
        _mm256_storeu_ps(cr + 8, _mm256_mul_ps(va, c1[r]));
      }
    }
    return;
  }
  alignas(32) float t[MR * NR];
  for (int r = 0; r < MR; ++r) {
    _mm256_store_ps(t + r * NR, _mm256_mul_ps(va, c0[r]));
    _mm256_store_ps(t + r * NR + 8, _mm256_mul_ps(va, c1[r]));
  }
  for (int r = 0; r < mr; ++r)
    for (int c = 0; c < nr; ++c) C[r * ldc + c] = beta ? C[r * ldc + c] + t[r * NR + c] : t[r * NR + c];
}
#else
static inline void micro(int64_t kc, const float* __restrict A, const float* __restrict B,
                         float* C, int64_t ldc, float alpha, bool beta, int mr, int nr) {
  float acc[MR][NR] = {};
  for (int64_t p = 0; p < kc; ++p) {
    for (int r = 0; r < MR; ++r) {
      const float a = A[r];
      for (int c = 0; c < NR; ++c) acc[r][c] += a * B[c];
    }
    A += MR;
    B += NR;
  }
  for (int r = 0; r < mr; ++r)
    for (int c = 0; c < nr; ++c) {
      const float x = alpha * acc[r][c];
      C[r * ldc + c] = beta ? C[r * ldc + c] + x : x;
    }
}
#endif

static inline float dot(const float* __restrict a, const float* __restrict b, int64_t n);

// ---------------------------------------------------------------------------------------------
// Packing. Ap holds MR-tall panels: panel q, step p, row r at Ap[q·MR·kc + p·MR + r].
// Bp holds NR-wide panels: step p, column c at Bp[p·NR + c]. Tails are zero-padded.

#if defined(__AVX512F__)
// In-register transpose of a 16×16 float block (r[i] is row i on entry, column i on exit).
static inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int h = 0; h < 16; h += 8)
    for (int i = 0; i < 4; ++i) {
      t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + 4 + i], 0x88);
      t[h + 4 + i] = _mm512_shuffle_f32x4(r[h + i], r[h + 4 + i], 0xdd);
    }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
    r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xdd);
  }
}

// dst[p·ld + c] = rows[c][p] for c < 16 (only the lanes in `mask` stored), p < 16.
static inline void transposeStore(const float* const rows[16], float* dst, int64_t ld,
                                  __mmask16 mask) {
  __m512 r[16];
  for (int c = 0; c < 16; ++c) r[c] = _mm512_loadu_ps(rows[c]);
  transpose16(r);
  for (int q = 0; q < 16; ++q) _mm512_mask_storeu_ps(dst + q * ld, mask, r[q]);
}
#endif

// Transposed A (A(i, p) = a[p·lda + i], e.g. a weight gradient Xᵀ·dY) is packed with the k-steps
// outermost: each step reads its whole mc-wide row segment of A once, front to back, and hands
// MR floats to each panel. Packing panel by panel instead (12 floats of every k-step, then the
// next 12) walks A with a stride of lda floats and makes the next panel fetch again the lines
// it shares with this one (a line holds 16 floats, a panel takes 12), from L3 once the stride
// has evicted them: a power of two for the usual M (2 KiB for M = 512, 8 KiB for 2048) maps all
// kc rows onto a few dozen L2 sets. TN 512×1536×576 ran 5–10 % slower than NN. The rows are
// prefetched a few k-steps ahead. Measured (interleaved A/B in one process, idle Zen 4, 2
// threads): TN 512×1536×576 +5–6 %, 512×576×576 +4 %, 512×576×1536 and 2048³ +2 %; one thread,
// CPU time: +6–7 % at M = 512, +3–4 % at M = 504 and 520 (no PMU in this VM to count the
// misses). NN and NT are untouched. Padding the panels by a cache line (MR·kc floats apart
// is a multiple of 4 KiB for kc = 768, so the 16 write streams share an L1 set) and packing in
// groups of 4 panels (48 columns = 3 whole lines per k-step) measured the same.

static void packA(const SgemmArgs& g, int64_t i0, int64_t mc, int64_t p0, int64_t kc,
                  float* __restrict Ap) {
  int64_t ir0 = 0;
#if defined(__AVX512F__)
  if (g.transA && mc >= MR) {
    constexpr int64_t kAhead = 4;  // k-steps prefetched ahead
    const int64_t full = mc / MR;
    const __mmask16 m = (__mmask16)((1u << MR) - 1u);
    for (int64_t p = 0; p < kc; ++p) {
      const float* src = g.a + (p0 + p) * g.lda + i0;
      if (p + kAhead < kc)
        for (int64_t c = 0; c < full * MR; c += 16)
          _mm_prefetch(reinterpret_cast<const char*>(src + kAhead * g.lda + c), _MM_HINT_T0);
      for (int64_t q = 0; q < full; ++q)
        _mm512_mask_storeu_ps(Ap + q * MR * kc + p * MR, m,
                              _mm512_maskz_loadu_ps(m, src + q * MR));
    }
    ir0 = full * MR;
  }
#endif
  for (int64_t ir = ir0; ir < mc; ir += MR) {
    const int mr = (int)std::min<int64_t>(MR, mc - ir);
    float* dst = Ap + ir * kc;
    if (!g.transA) {  // A(i, p) = a[i·lda + p]
      const float* rows[MR];
      for (int r = 0; r < MR; ++r) rows[r] = g.a + (i0 + ir + std::min(r, mr - 1)) * g.lda + p0;
      if (mr == MR) {
        int64_t p = 0;
#if defined(__AVX512F__)
        // 16 k-steps at a time through a 16×16 transpose (rows past MR repeat the last row and
        // are masked off when storing).
        const float* src[16];
        for (; p + 16 <= kc; p += 16) {
          for (int r = 0; r < 16; ++r) src[r] = rows[std::min(r, MR - 1)] + p;
          transposeStore(src, dst + p * MR, MR, (__mmask16)((1u << MR) - 1u));
        }
#endif
        for (; p < kc; ++p)
          for (int r = 0; r < MR; ++r) dst[p * MR + r] = rows[r][p];
      } else {
        for (int64_t p = 0; p < kc; ++p)
          for (int r = 0; r < MR; ++r) dst[p * MR + r] = r < mr ? rows[r][p] : 0.0f;
      }
    } else {  // A(i, p) = a[p·lda + i]
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = g.a + (p0 + p) * g.lda + i0 + ir;
        if (mr == MR) {
          for (int r = 0; r < MR; ++r) dst[p * MR + r] = src[r];
        } else {
          for (int r = 0; r < MR; ++r) dst[p * MR + r] = r < mr ? src[r] : 0.0f;
        }
      }
    }
  }
}

static void packB(const SgemmArgs& g, int64_t j0, int64_t p0, int64_t kc, float* __restrict dst) {
  const int nr = (int)std::min<int64_t>(NR, g.n - j0);
  if (!g.transB) {  // B(p, j) = b[p·ldb + j]
    for (int64_t p = 0; p < kc; ++p) {
      const float* src = g.b + (p0 + p) * g.ldb + j0;
      float* d = dst + p * NR;
      if (nr == NR) {
        for (int c = 0; c < NR; ++c) d[c] = src[c];
      } else {
        for (int c = 0; c < NR; ++c) d[c] = c < nr ? src[c] : 0.0f;
      }
    }
  } else {  // B(p, j) = b[j·ldb + p]: a transpose; go through blocks of 8 k-steps to keep
            // the reads sequential per row and the writes inside a few cache lines.
    int64_t p = 0;
#if defined(__AVX512F__)
    if (nr == NR) {
      const float* src[16];
      for (; p + 16 <= kc; p += 16)
        for (int h = 0; h < NR; h += 16) {
          for (int c = 0; c < 16; ++c) src[c] = g.b + (j0 + h + c) * g.ldb + p0 + p;
          transposeStore(src, dst + p * NR + h, NR, (__mmask16)0xFFFF);
        }
    }
#endif
    for (; p + 8 <= kc; p += 8) {
      for (int c = 0; c < NR; ++c) {
        if (c < nr) {
          const float* src = g.b + (j0 + c) * g.ldb + p0 + p;
          for (int q = 0; q < 8; ++q) dst[(p + q) * NR + c] = src[q];
        } else {
          for (int q = 0; q < 8; ++q) dst[(p + q) * NR + c] = 0.0f;
        }
      }
    }
    for (; p < kc; ++p)
      for (int c = 0; c < NR; ++c) dst[p * NR + c] = c < nr ? g.b[(j0 + c) * g.ldb + p0 + p] : 0.0f;
  }
}

// C = alpha·A·Bᵀ (+C) for a few rows of A (decoding: y = x·Wᵀ with W stored [out, in], one row
// of A per sequence in the batch). Packing B would cost as much as the product itself and the
// product is memory-bound: each thread streams its own rows of B (W) exactly once, four rows at a
// time, and multiplies them with up to four rows of A held in cache, in 4×4 blocks of vector
// accumulators (one horizontal sum per output). More than four rows of A re-read the four rows of
// B from L1, not from memory.
constexpr int64_t kSmallM = 16;

#if defined(__AVX512F__)
template <int R>
static inline void smallBlock(const SgemmArgs& g, int64_t i0, int64_t j0, int nc) {
  const int64_t k = g.k;
  __m512 acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_setzero_ps();
  const float* brow[4];
  for (int c = 0; c < 4; ++c) brow[c] = g.b + (j0 + std::min(c, nc - 1)) * g.ldb;
  const float* arow[R];
  for (int r = 0; r < R; ++r) arow[r] = g.a + (i0 + r) * g.lda;
  int64_t p = 0;
  for (; p + 16 <= k; p += 16) {
    __m512 w[4];
    for (int c = 0; c < 4; ++c) w[c] = _mm512_loadu_ps(brow[c] + p);
    for (int r = 0; r < R; ++r) {
      const __m512 x = _mm512_loadu_ps(arow[r] + p);
      for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_fmadd_ps(x, w[c], acc[r][c]);
    }
  }
  if (p < k) {
    const __mmask16 mk = (__mmask16)((1u << (k - p)) - 1u);
    __m512 w[4];
    for (int c = 0; c < 4; ++c) w[c] = _mm512_maskz_loadu_ps(mk, brow[c] + p);
    for (int r = 0; r < R; ++r) {
      const __m512 x = _mm512_maskz_loadu_ps(mk, arow[r] + p);
      for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_fmadd_ps(x, w[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < nc; ++c) {
      float* cij = g.c + (i0 + r) * g.ldc + j0 + c;
      const float x = g.alpha * _mm512_reduce_add_ps(acc[r][c]);
      *cij = g.accumulate ? *cij + x : x;
    }
}
#elif defined(__AVX2__) && defined(__FMA__)
static inline float hsum256(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}
template <int R>
static inline void smallBlock(const SgemmArgs& g, int64_t i0, int64_t j0, int nc) {
  const int64_t k = g.k;
  __m256 acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < 4; ++c) acc[r][c] = _mm256_setzero_ps();
  const float* brow[4];
  for (int c = 0; c < 4; ++c) brow[c] = g.b + (j0 + std::min(c, nc - 1)) * g.ldb;
  const float* arow[R];
  for (int r = 0; r < R; ++r) arow[r] = g.a + (i0 + r) * g.lda;
  int64_t p = 0;
  for (; p + 8 <= k; p += 8) {
    __m256 w[4];
    for (int c = 0; c < 4; ++c) w[c] = _mm256_loadu_ps(brow[c] + p);
    for (int r = 0; r < R; ++r) {
      const __m256 x = _mm256_loadu_ps(arow[r] + p);
      for (int c = 0; c < 4; ++c) acc[r][c] = _mm256_fmadd_ps(x, w[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < nc; ++c) {
      float s = hsum256(acc[r][c]);
      for (int64_t q = p; q < k; ++q) s += arow[r][q] * brow[c][q];
      float* cij = g.c + (i0 + r) * g.ldc + j0 + c;
      const float x = g.alpha * s;
      *cij = g.accumulate ? *cij + x : x;
    }
}
#else
template <int R>
static inline void smallBlock(const SgemmArgs& g, int64_t i0, int64_t j0, int nc) {
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < nc; ++c) {
      float* cij = g.c + (i0 + r) * g.ldc + j0 + c;
      const float x = g.alpha * dot(g.a + (i0 + r) * g.lda, g.b + (j0 + c) * g.ldb, g.k);
      *cij = g.accumulate ? *cij + x : x;
    }
}
#endif

static void sgemmSmallMNT(const SgemmArgs& g, int threads) {
  const int64_t jBlocks = (g.n + 3) / 4;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (int64_t jb = 0; jb < jBlocks; ++jb) {
    const int64_t j0 = jb * 4;
    const int nc = (int)std::min<int64_t>(4, g.n - j0);
    int64_t i0 = 0;
    for (; i0 + 4 <= g.m; i0 += 4) smallBlock<4>(g, i0, j0, nc);
    switch (g.m - i0) {
      case 3: smallBlock<3>(g, i0, j0, nc); break;
      case 2: smallBlock<2>(g, i0, j0, nc); break;
      case 1: smallBlock<1>(g, i0, j0, nc); break;
      default: break;
    }
  }
}

// C = alpha·op(A)·op(B) (+C) for a narrow C (n ≤ 16: LoRA's rank-r products x·Aᵀ, dY·B,
// dYᵀ·X). The packed path pads n to NR = 32 columns and wastes most of its multiply-adds; here
// op(B) is copied once into a k × NB block (NB = 8 or 16, zero-padded) and each group of 8 rows
// of C accumulates 8 vectors of NB columns over k.
template <int NB>
static void sgemmNarrow(const SgemmArgs& g, bool transC = false) {
  float* Bp = scratch(Scratch::GemmNarrowB, (size_t)(g.k * NB));
  for (int64_t p = 0; p < g.k; ++p)
    for (int c = 0; c < NB; ++c)
      Bp[p * NB + c] = c < g.n ? (g.transB ? g.b[c * g.ldb + p] : g.b[p * g.ldb + c]) : 0.0f;
  constexpr int RB = 8;
  // Row groups are independent: split them over the team when the product is worth it (each
  // row's sum runs in the same order whatever the thread count).
  const int64_t groups = (g.m + RB - 1) / RB;
  const bool par = !omp_in_parallel() && (double)g.m * g.n * g.k >= kParallelFmas / 8;
#pragma omp parallel for num_threads(numThreads()) schedule(static) if (par)
  for (int64_t grp = 0; grp < groups; ++grp) {
    const int64_t i0 = grp * RB;
    const int rb = (int)std::min<int64_t>(RB, g.m - i0);
    float acc[RB][NB] = {};
    if (!g.transA) {
      const float* rows[RB];
      for (int r = 0; r < RB; ++r) rows[r] = g.a + (i0 + std::min(r, rb - 1)) * g.lda;
      for (int64_t p = 0; p < g.k; ++p) {
        const float* bp = Bp + p * NB;
#pragma GCC unroll 8
        for (int r = 0; r < RB; ++r) {
          const float av = rows[r][p];
#pragma omp simd
          for (int c = 0; c < NB; ++c) acc[r][c] += av * bp[c];
        }
      }
    } else {  // A(i, p) = a[p·lda + i]: the 8 rows of a step are adjacent
      for (int64_t p = 0; p < g.k; ++p) {
        const float* bp = Bp + p * NB;
        const float* ap = g.a + p * g.lda + i0;
#pragma GCC unroll 8
        for (int r = 0; r < RB; ++r) {
          const float av = r < rb ? ap[r] : 0.0f;
#pragma omp simd
          for (int c = 0; c < NB; ++c) acc[r][c] += av * bp[c];
        }
      }
    }
    for (int r = 0; r < rb; ++r) {
      // transC: this product is Cᵀ of the caller's; element (i, c) goes to c[c·ldc + i].
      const int64_t rs = transC ? 1 : g.ldc, cs = transC ? g.ldc : 1;
      float* cr = g.c + (i0 + r) * rs;
      for (int64_t c = 0; c < g.n; ++c)
        cr[c * cs] = g.alpha * acc[r][c] + (g.accumulate ? cr[c * cs] : 0.0f);
    }
  }
}

// C = alpha·op(A)·op(B) (+C) with a short inner dimension (k ≤ 8: LoRA's up-projection
// (x·Aᵀ)·Bᵀ, k = r). Packing both operands costs as much as the product; here op(B) is copied
// once into k contiguous rows and each row of C is a k-term sum of those rows, vectorised over
// the columns.
template <int KB>
static void sgemmShortK(const SgemmArgs& g) {
  const int64_t k = g.k, n = g.n, m = g.m, lda = g.lda, ldc = g.ldc;
  const bool transA = g.transA, acc = g.accumulate;
  const float alpha = g.alpha;
  const float* a = g.a;
  float* c = g.c;
  // KB rows of op(B), zero rows past k.
  float* Bt = scratch(Scratch::GemmShortKB, (size_t)(KB * n));
  for (int64_t p = 0; p < KB; ++p)
    for (int64_t j = 0; j < n; ++j)
      Bt[p * n + j] = p < k ? (g.transB ? g.b[j * g.ldb + p] : g.b[p * g.ldb + j]) : 0.0f;
  const float* __restrict B = Bt;
  const bool par = !omp_in_parallel() && (double)m * n * k >= kParallelFmas / 8;
#pragma omp parallel for num_threads(numThreads()) schedule(static) if (par)
  for (int64_t i = 0; i < m; ++i) {
    float av[KB];
    for (int p = 0; p < KB; ++p)
      av[p] = p < k ? alpha * (transA ? a[p * lda + i] : a[i * lda + p]) : 0.0f;
    float* __restrict cr = c + i * ldc;
    if (acc) {
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) {
        float s = cr[j];
#pragma GCC unroll 16
        for (int p = 0; p < KB; ++p) s += av[p] * B[p * n + j];
        cr[j] = s;
      }
    } else {
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) {
        float s = 0.0f;
#pragma GCC unroll 16
        for (int p = 0; p < KB; ++p) s += av[p] * B[p * n + j];
        cr[j] = s;
      }
    }
  }
}

static void sgemm(const SgemmArgs& g) {
  if (g.m <= 0 || g.n <= 0) return;
  if (g.k > 0 && g.k <= 8 && g.m >= 16 && g.n > 16)  // short k: LoRA's up-projection
    return sgemmShortK<8>(g);
  if (g.n <= 16 && g.m >= 16 && g.k > 0)  // narrow C: LoRA's rank-r products
    return g.n <= 8 ? sgemmNarrow<8>(g) : sgemmNarrow<16>(g);
  if (g.transA && g.m <= 8 && g.n >= 16 && g.k >= 16) {  // LoRA's dA = dYᵀ·X: a wide, short C
    SgemmArgs t = g;  // Cᵀ = op(B)ᵀ·op(A)ᵀ, narrow, stored transposed
    t.m = g.n, t.n = g.m;
    t.a = g.b, t.lda = g.ldb, t.transA = !g.transB;
    t.b = g.a, t.ldb = g.lda, t.transB = false;
    return sgemmNarrow<8>(t, true);
  }
  if (g.m <= kSmallM && !g.transA && g.transB && g.k > 0) {
    // A few rows of x against all of W is bound by reading W, not by multiply-adds: split it
    // over the team once W is more than a few hundred KiB (one thread streams ~10 GB/s here,
    // two ~19), however few the rows.
    const int threads = omp_in_parallel() || (double)g.n * g.k < 64.0 * 1024 ? 1 : numThreads();
    sgemmSmallMNT(g, threads);
    return;
  }
  if (g.k <= 0) {
    if (!g.accumulate)
      for (int64_t i = 0; i < g.m; ++i) std::memset(g.c + i * g.ldc, 0, sizeof(float) * g.n);
    return;
  }
  const int64_t nPanels = (g.n + NR - 1) / NR;
  const int64_t mTiles = (g.m + MR - 1) / MR;
  // Equal k-blocks of at most KC (576 → 3 × 192 rather than 256 + 256 + 64).
  const int64_t kcMax = (g.k + (g.k + KC - 1) / KC - 1) / ((g.k + KC - 1) / KC);
  const int64_t kBlocks = (g.k + kcMax - 1) / kcMax;
  // B is packed for the whole K at once, so the team synchronises once per block of columns
  // (not once per k-block): fewer barriers, which matters most when other processes take cores.
  // Very wide B (a vocabulary projection) is split into column blocks of at most kBudget floats.
  constexpr int64_t kBudget = int64_t(9) << 19;  // 4.5 Mi floats = 18 MiB
  const int64_t ncPanels = std::max<int64_t>(1, std::min<int64_t>(nPanels, kBudget / (g.k * NR)));
  float* Bp = scratch(Scratch::GemmBPanels, (size_t)(ncPanels * NR * g.k));
  int want = omp_in_parallel() ? 1 : numThreads();
  // Waking the team costs ~10–50 µs on an idle machine and up to a time slice on a busy one:
  // products under ~4M multiply-adds (≈ 40 µs on one core) stay on the calling thread.
  if ((double)g.m * g.n * g.k < kParallelFmas) want = 1;
  if (mTiles * nPanels < want) want = (int)(mTiles * nPanels);

#pragma omp parallel num_threads(want) if (want > 1)
  {
    const int nt = omp_get_num_threads(), tid = omp_get_thread_num();
    float* Ap = scratch(Scratch::GemmABlock, (size_t)(MC * kcMax));
    for (int64_t jc0 = 0; jc0 < nPanels; jc0 += ncPanels) {
      const int64_t np = std::min<int64_t>(ncPanels, nPanels - jc0);
      // Packed B of this column block: k-block kb at Bp + kb·kcMax·np·NR, panel jp inside it.
#pragma omp for schedule(static)
      for (int64_t idx = 0; idx < kBlocks * np; ++idx) {
        const int64_t kb = idx / np, jp = idx % np;
        const int64_t p0 = kb * kcMax, kc = std::min<int64_t>(kcMax, g.k - p0);
        packB(g, (jc0 + jp) * NR, p0, kc, Bp + p0 * np * NR + jp * NR * kc);
      }
      // Split C into tm × tn thread blocks of whole tiles, as even as possible; on ties prefer
      // splitting rows (B panels are shared, A blocks are private).
      int tm = nt, tn = 1;
      int64_t best = -1;
      for (int d = nt; d >= 1; --d) {
        if (nt % d) continue;
        const int64_t cost = ((mTiles + d - 1) / d) * ((np + nt / d - 1) / (nt / d));
        if (best < 0 || cost < best) best = cost, tm = d, tn = nt / d;
      }
      const int im = tid / tn, in = tid % tn;
      const int64_t ms = mTiles * im / tm * MR;
      const int64_t me = std::min<int64_t>(g.m, mTiles * (im + 1) / tm * MR);
      const int64_t ps = np * in / tn, pe = np * (in + 1) / tn;
      for (int64_t i0 = ms; i0 < me; i0 += MC) {
        const int64_t mc = std::min<int64_t>(MC, me - i0);
        for (int64_t p0 = 0; p0 < g.k; p0 += kcMax) {
          const int64_t kc = std::min<int64_t>(kcMax, g.k - p0);
          const bool beta = g.accumulate || p0 > 0;
          packA(g, i0, mc, p0, kc, Ap);
          const float* bblk = Bp + p0 * np * NR;
          for (int64_t jp = ps; jp < pe; ++jp) {
            const int64_t j0 = (jc0 + jp) * NR;
            const int nr = (int)std::min<int64_t>(NR, g.n - j0);
            const float* bpan = bblk + jp * NR * kc;
            for (int64_t ir = 0; ir < mc; ir += MR)
              micro(kc, Ap + ir * kc, bpan, g.c + (i0 + ir) * g.ldc + j0, g.ldc, g.alpha, beta,
                    (int)std::min<int64_t>(MR, mc - ir), nr);
          }
        }
      }
      if (jc0 + ncPanels < nPanels) {
#pragma omp barrier
      }
    }
  }
}

static void matmul(const MatmulArgs& p) {
  SgemmArgs g{};
  g.m = p.m;
  g.n = p.n;
  g.k = p.k;
  g.transA = p.transA;
  g.transB = p.transB;
  g.lda = p.transA ? p.m : p.k;
  g.ldb = p.transB ? p.k : p.n;
  g.ldc = p.n;
  g.alpha = p.alpha;
  g.accumulate = p.accumulate;
  const int threads = numThreads();
  // Many small products (attention-sized): one whole product per thread.
  const double fmas = (double)p.m * p.n * p.k;
  const bool perBatch = p.batch > 1 && threads > 1 && p.strideOut != 0 &&
                        fmas < 2.0 * 1024 * 1024 && fmas * p.batch >= kParallelFmas;
  if (perBatch) {
#pragma omp parallel for num_threads(threads) schedule(dynamic)
    for (int64_t b = 0; b < p.batch; ++b) {
      SgemmArgs gb = g;
      gb.a = p.a + b * p.strideA;
      gb.b = p.b + b * p.strideB;
      gb.c = p.c + b * p.strideOut;
      sgemm(gb);
    }
    return;
  }
  for (int64_t b = 0; b < p.batch; ++b) {
    SgemmArgs gb = g;
    gb.a = p.a + b * p.strideA;
    gb.b = p.b + b * p.strideB;
    gb.c = p.c + b * p.strideOut;
    // strideOut 0 with several batches sums every product into one output.
    if (b > 0 && p.strideOut == 0) gb.accumulate = true;
    sgemm(gb);
  }
}

// ---------------------------------------------------------------------------------------------
// FMA peak: independent accumulator chains, registers only.

volatile float peakSink;

#if defined(__AVX512F__)
constexpr int kLanes = 16, kChains = 16;
static float fmaLoop(int64_t iters) {
  __m512 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_ps(0.001f * j);
  const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-6f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_fmadd_ps(acc[j], x, y);
  }
  alignas(64) float t[16];
  __m512 s = acc[0];
  for (int j = 1; j < kChains; ++j) s = _mm512_add_ps(s, acc[j]);
  _mm512_store_ps(t, s);
  return t[0] + t[15];
}
#elif defined(__AVX2__) && defined(__FMA__)
constexpr int kLanes = 8, kChains = 12;
static float fmaLoop(int64_t iters) {
  __m256 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm256_set1_ps(0.001f * j);
  const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-6f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < kChains; ++j) acc[j] = _mm256_fmadd_ps(acc[j], x, y);
  }
  alignas(32) float t[8];
  __m256 s = acc[0];
  for (int j = 1; j < kChains; ++j) s = _mm256_add_ps(s, acc[j]);
  _mm256_store_ps(t, s);
  return t[0] + t[7];
}
#else
constexpr int kLanes = 4, kChains = 8;
static float fmaLoop(int64_t iters) {
  float acc[kChains][kLanes];
  for (int j = 0; j < kChains; ++j)
    for (int l = 0; l < kLanes; ++l) acc[j][l] = 0.001f * (j + l);
  for (int64_t i = 0; i < iters; ++i) {
    for (int j = 0; j < kChains; ++j)
      for (int l = 0; l < kLanes; ++l) acc[j][l] = acc[j][l] * 0.999999f + 1e-6f;
  }
  float s = 0;
  for (int j = 0; j < kChains; ++j) s += acc[j][0];
  return s;
}
#endif

static double threadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double peak(double seconds, int threads) {
  if (threads < 1) threads = numThreads();
  // Size the run from thread CPU time (immune to preemption), so that a short calibration run
  // stretched by another process's time slice cannot shrink the measured run; the result is
  // then wall-clock over all threads, like the GEMM it is compared with.
  int64_t iters = 1 << 16;
  double cpu = 0.0;
  for (int attempt = 0; attempt < 4; ++attempt) {
    double worst = 0.0;
#pragma omp parallel num_threads(threads) reduction(max : worst)
    {
      const double c0 = threadCpuSeconds();
      const float s = fmaLoop(iters);
      if (s == 12345.0f) peakSink = s;
      worst = threadCpuSeconds() - c0;
    }
    cpu = worst;
    if (cpu >= 1e-3) break;
    iters *= 8;
  }
  iters = std::max<int64_t>(iters, (int64_t)((double)iters * seconds / std::max(cpu, 1e-6)));
  const double t0 = omp_get_wtime();
#pragma omp parallel num_threads(threads)
  {
    const float s = fmaLoop(iters);
    if (s == 12345.0f) peakSink = s;
  }
  const double t = omp_get_wtime() - t0;
  return 2.0 * kLanes * kChains * (double)iters * threads / t / 1e9;
}

// Attention forward and backward (see the file).
#include "attention_impl.h"

// Quantised frozen weights: qmatmul, qmatmulT, qembedding (see the file).
#include "quant_impl.h"

#if defined(__AVX512F__)
constexpr const char* kUnits = "fp32 FMA on 512-bit vectors (AVX-512F)";
#elif defined(__AVX2__) && defined(__FMA__)
constexpr const char* kUnits = "fp32 FMA on 256-bit vectors (AVX2/FMA)";
#else
constexpr const char* kUnits = "portable C++ (the compiler's vectorisation)";
#endif
static const KernelTable kTable = {kName,     MR,        NR,       matmul,    peak,
                                   attention, attentionBackward, qmatmul, qmatmulT, qembedding,
                                   0,         kUnits};

}  // namespace RL4QE_ISA
}  // namespace rl4qe
