// Attention forward and backward (fused, flash-style) and their helpers, compiled once per
// instruction set: isa_impl.h includes this file INSIDE namespace rl4qe::RL4QE_ISA, after the
// sgemm it reuses for the tiled paths, so it has no #include of its own. It also defines `dot`,
// which isa_impl.h declares ahead of the GEMM.
//
// ---------------------------------------------------------------------------------------------
// Attention, flash-style: one query row at a time against its visible keys, scores kept only for
// that row (seqK floats per thread), logsumexp saved; the backward recomputes the scores.

// exp for the softmax rows: the vectorisable polynomial of exp_poly.h.
static inline float expVec(float x) { return expPoly(x); }

static inline float dot(const float* __restrict a, const float* __restrict b, int64_t n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}
static inline void axpy(float* __restrict y, float a, const float* __restrict x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

// Keys [lo, hi) visible to query i of batch b.
static inline void keyRange(const AttnArgs& p, int64_t b, int64_t i, int64_t& lo, int64_t& hi) {
  lo = p.keyStart ? std::max<int64_t>(0, p.keyStart[b]) : 0;
  hi = p.causal ? std::min<int64_t>(p.seqK, p.seqK - p.seqQ + i + 1) : p.seqK;
}

// S[r·ldS + j] = scale · Σ_d A_r[d] · BT[d·ldB + j] for r < 4, j < n (rounded up to 16; ldB and
// ldS ≥ that). Scores for four query rows against 16 keys at a time with the keys transposed, so
// the inner loop is a plain vector FMA (no horizontal sums) and each key column is loaded once
// for four rows.
static void rowsTimesT(const float* const A[4], const float* BT, int64_t ldB, int64_t D, int64_t n,
                       float scale, float* S, int64_t ldS) {
  for (int64_t j0 = 0; j0 < n; j0 += 16) {
    float acc[4][16] = {};
    for (int64_t d = 0; d < D; ++d) {
      const float* bt = BT + d * ldB + j0;
#pragma GCC unroll 4
      for (int r = 0; r < 4; ++r) {
        const float av = A[r][d];
#pragma omp simd
        for (int c = 0; c < 16; ++c) acc[r][c] += av * bt[c];
      }
    }
    for (int r = 0; r < 4; ++r)
#pragma omp simd
      for (int c = 0; c < 16; ++c) S[r * ldS + j0 + c] = acc[r][c] * scale;
  }
}

// BT[d·ldB + j] = rows[j][d] for j < n (row j at base + j·stride), zero for n ≤ j < round16(n).
static void transposeRows(const float* base, int64_t stride, int64_t n, int64_t D, float* BT,
                          int64_t ldB) {
  const int64_t nPad = (n + 15) / 16 * 16;
  for (int64_t j = 0; j < n; ++j) {
    const float* src = base + j * stride;
    for (int64_t d = 0; d < D; ++d) BT[d * ldB + j] = src[d];
  }
  for (int64_t d = 0; d < D; ++d)
    for (int64_t j = n; j < nPad; ++j) BT[d * ldB + j] = 0.0f;
}

// ---------------------------------------------------------------------------------------------
// Attention on blocks of query rows through the packed GEMM (used when seqQ ≥ kTiledMinRows; the
// row-at-a-time kernels below stay for decoding, where a block would be one or two rows).
// Per task (batch, head, block of QB query rows): S = scale·Q·Kᵀ over the keys the block can see
// (QB × n), the causal/left-padding mask and softmax per row (only the logsumexp is saved),
// then out = P·V. Only a QB × seqK block of scores exists per thread, never seqQ × seqK.
// The backward recomputes P the same way per block and forms dP = dO·Vᵀ, dS = P⊙(dP − δ)·scale,
// dQ = dS·K (owned by the task), and accumulates dV += Pᵀ·dO and dK += dSᵀ·Q into buffers
// private to the task (one per (batch, head, split)), summed over the heads of each KV group
// at the end: no atomics, and the sum order does not depend on the thread count.

constexpr int64_t kTiledMinRows = 16;
constexpr int64_t kAttnQB = 64;

static inline void gemmRows(int64_t m, int64_t n, int64_t k, bool transA, bool transB,
                            const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                            int64_t ldc, float alpha, bool accumulate) {
  SgemmArgs g{};
  g.m = m;
  g.n = n;
  g.k = k;
  g.transA = transA;
  g.transB = transB;
  g.a = a;
  g.lda = lda;
  g.b = b;
  g.ldb = ldb;
  g.c = c;
  g.ldc = ldc;
  g.alpha = alpha;
  g.accumulate = accumulate;
  sgemm(g);
}

// Element offset of batch entry b in k and v (dense [batch, seqK, kvHeads, headDim]). The tiled
// kernels address k and v only through this: a layout with another batch stride (a KV cache
// read in place) changes this one line.
static inline int64_t kvBatchOffset(const AttnArgs& p, int64_t b) {
  return b * p.kvStride;  // dense (seqK·kvHeads·headDim) unless k/v are views into a KV cache
}

// Maximum of x[0..n) in 16 lanes (GCC leaves an `omp simd reduction(max)` over std::max as a
// scalar, latency-bound maxss chain).
static inline float rowMax(const float* x, int64_t n) {
  float m[16];
  for (int l = 0; l < 16; ++l) m[l] = -INFINITY;
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
#pragma omp simd
    for (int l = 0; l < 16; ++l) m[l] = x[j + l] > m[l] ? x[j + l] : m[l];
  }
  float mx = -INFINITY;
  for (int l = 0; l < 16; ++l) mx = m[l] > mx ? m[l] : mx;
  for (; j < n; ++j) mx = x[j] > mx ? x[j] : mx;
  return mx;
}

static void attentionTiled(const float* q, const float* k, const float* v, float* out,
                           float* lse, const AttnArgs& p) {
  const int64_t D = p.headDim, group = p.heads / p.kvHeads;
  const int64_t qStride = p.heads * D, kStride = p.kvRowStride;
  const int64_t qBlocks = (p.seqQ + kAttnQB - 1) / kAttnQB;
  const int64_t tasks = p.batch * p.heads * qBlocks;
  const int64_t ldS = (p.seqK + 15) / 16 * 16;
  const double work = (double)p.batch * p.heads * p.seqQ * p.seqK * D;
  const int threads = work < kParallelFmas ? 1 : numThreads();
#pragma omp parallel num_threads(threads)
  {
    float* S = scratch(Scratch::AttnTileScores, (size_t)(kAttnQB * ldS));
    // Causal blocks grow with the block index: hand out the largest first.
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t qb = qBlocks - 1 - t % qBlocks, h = (t / qBlocks) % p.heads,
                    b = t / (qBlocks * p.heads);
      const int64_t kvh = h / group;
      const int64_t i0 = qb * kAttnQB, i1 = std::min<int64_t>(p.seqQ, i0 + kAttnQB), m = i1 - i0;
      const float* qb0 = q + ((b * p.seqQ + i0) * p.heads + h) * D;
      float* ob0 = out + ((b * p.seqQ + i0) * p.heads + h) * D;
      float* lrow = lse + (b * p.heads + h) * p.seqQ + i0;
      int64_t lo, hiMax;
      keyRange(p, b, i1 - 1, lo, hiMax);  // the last row sees the most keys
      if (hiMax <= lo) {
        for (int64_t r = 0; r < m; ++r) {
          std::memset(ob0 + r * qStride, 0, sizeof(float) * D);
          lrow[r] = -INFINITY;
        }
        continue;
      }
      const int64_t n = hiMax - lo;
      const float* kb = k + kvBatchOffset(p, b) + lo * p.kvRowStride + kvh * p.kvHeadStride;
      const float* vb = v + kvBatchOffset(p, b) + lo * p.kvRowStride + kvh * p.kvHeadStride;
      gemmRows(m, n, D, false, true, qb0, qStride, kb, kStride, S, ldS, p.scale, false);
      for (int64_t r = 0; r < m; ++r) {
        int64_t l2, hi;
        keyRange(p, b, i0 + r, l2, hi);
        const int64_t ni = std::max<int64_t>(0, hi - lo);
        float* sr = S + r * ldS;
        if (ni == 0) {
          std::memset(sr, 0, sizeof(float) * n);
          lrow[r] = -INFINITY;
          continue;
        }
        const float mx = rowMax(sr, ni);
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < ni; ++j) {
          sr[j] = expVec(sr[j] - mx);
          sum += sr[j];
        }
        const float inv = 1.0f / sum;
#pragma omp simd
        for (int64_t j = 0; j < ni; ++j) sr[j] *= inv;
        for (int64_t j = ni; j < n; ++j) sr[j] = 0.0f;
        lrow[r] = mx + std::log(sum);
      }
      gemmRows(m, D, n, false, false, S, ldS, vb, kStride, ob0, qStride, 1.0f, false);
    }
  }
}

static void attentionBackwardTiled(const float* q, const float* k, const float* v,
                                   const float* out, const float* lse, const float* gOut,
                                   float* gq, float* gk, float* gv, const AttnArgs& p) {
  const int64_t D = p.headDim, group = p.heads / p.kvHeads;
  const int64_t qStride = p.heads * D, kStride = p.kvHeads * D;
  const int64_t qBlocks = (p.seqQ + kAttnQB - 1) / kAttnQB;
  const int64_t ldS = (p.seqK + 15) / 16 * 16;
  const double work = (double)p.batch * p.heads * p.seqQ * p.seqK * D;
  const int threads = work < kParallelFmas / 4 ? 1 : numThreads();
  // Each (batch, head) is split into `splits` tasks (query blocks dealt round-robin, so causal
  // work stays balanced) when there are fewer than 8 heads in all. The split does not depend on
  // the thread count, so neither does the order of the dK/dV sums.
  const int64_t heads = p.batch * p.heads;
  constexpr int64_t kMinTasks = 8;
  const int64_t splits =
      std::max<int64_t>(1, std::min<int64_t>(qBlocks, (kMinTasks + heads - 1) / heads));
  const int64_t tasks = heads * splits;
  // Private dK, dV per task: [tasks][seqK][D] each, on the calling thread's scratch.
  const size_t privFloats = (size_t)tasks * p.seqK * D;
  float* dKp = scratch(Scratch::AttnTileDK, privFloats);
  float* dVp = scratch(Scratch::AttnTileDV, privFloats);
#pragma omp parallel num_threads(threads)
  {
    float* S = scratch(Scratch::AttnTileScores, (size_t)(kAttnQB * ldS));
    float* DP = scratch(Scratch::AttnTileDScores, (size_t)(kAttnQB * ldS));
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t split = t % splits, bh = t / splits, h = bh % p.heads, b = bh / p.heads;
      const int64_t kvh = h / group;
      float* dK = dKp + (size_t)t * p.seqK * D;
      float* dV = dVp + (size_t)t * p.seqK * D;
      std::memset(dK, 0, sizeof(float) * p.seqK * D);
      std::memset(dV, 0, sizeof(float) * p.seqK * D);
      for (int64_t qb = qBlocks - 1 - split; qb >= 0; qb -= splits) {
        const int64_t i0 = qb * kAttnQB, i1 = std::min<int64_t>(p.seqQ, i0 + kAttnQB);
        const int64_t m = i1 - i0;
        const int64_t o0 = ((b * p.seqQ + i0) * p.heads + h) * D;
        const float* lrow = lse + (b * p.heads + h) * p.seqQ + i0;
        int64_t lo, hiMax;
        keyRange(p, b, i1 - 1, lo, hiMax);
        if (hiMax <= lo) {
          for (int64_t r = 0; r < m; ++r) std::memset(gq + o0 + r * qStride, 0, sizeof(float) * D);
          continue;
        }
        const int64_t n = hiMax - lo;
        const float* kb = k + kvBatchOffset(p, b) + (lo * p.kvHeads + kvh) * D;
        const float* vb = v + kvBatchOffset(p, b) + (lo * p.kvHeads + kvh) * D;
        gemmRows(m, n, D, false, true, q + o0, qStride, kb, kStride, S, ldS, p.scale, false);
        gemmRows(m, n, D, false, true, gOut + o0, qStride, vb, kStride, DP, ldS, 1.0f, false);
        for (int64_t r = 0; r < m; ++r) {
          int64_t l2, hi;
          keyRange(p, b, i0 + r, l2, hi);
          const int64_t ni = std::max<int64_t>(0, hi - lo);
          float* sr = S + r * ldS;
          float* dr = DP + r * ldS;
          if (ni > 0) {
            const float l = lrow[r];
            const float dl = dot(gOut + o0 + r * qStride, out + o0 + r * qStride, D);
#pragma omp simd
            for (int64_t j = 0; j < ni; ++j) {
              const float pij = expVec(sr[j] - l);
              sr[j] = pij;
              dr[j] = pij * (dr[j] - dl) * p.scale;
            }
          }
          for (int64_t j = ni; j < n; ++j) sr[j] = dr[j] = 0.0f;
        }
        gemmRows(m, D, n, false, false, DP, ldS, kb, kStride, gq + o0, qStride, 1.0f, false);
        gemmRows(n, D, m, true, false, S, ldS, gOut + o0, qStride, dV + lo * D, D, 1.0f, true);
        gemmRows(n, D, m, true, false, DP, ldS, q + o0, qStride, dK + lo * D, D, 1.0f, true);
      }
    }
    // gk, gv: sum the private buffers of every head of the group and every split.
    const int64_t rowsK = p.batch * p.seqK * p.kvHeads;
#pragma omp for schedule(static)
    for (int64_t idx = 0; idx < rowsK; ++idx) {
      const int64_t kvh = idx % p.kvHeads, j = (idx / p.kvHeads) % p.seqK,
                    b = idx / (p.kvHeads * p.seqK);
      float* gkr = gk + idx * D;
      float* gvr = gv + idx * D;
      std::memset(gkr, 0, sizeof(float) * D);
      std::memset(gvr, 0, sizeof(float) * D);
      for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h)
        for (int64_t s = 0; s < splits; ++s) {
          const size_t t = (size_t)((b * p.heads + h) * splits + s);
          const float* a = dKp + (t * p.seqK + j) * D;
          const float* c = dVp + (t * p.seqK + j) * D;
#pragma omp simd
          for (int64_t d = 0; d < D; ++d) {
            gkr[d] += a[d];
            gvr[d] += c[d];
          }
        }
    }
  }
}

static void attention(const float* q, const float* k, const float* v, float* out, float* lse,
                      const AttnArgs& p) {
  if (p.seqQ >= kTiledMinRows && p.headDim > 0) return attentionTiled(q, k, v, out, lse, p);
  const int64_t D = p.headDim, group = p.heads / p.kvHeads;
  // Tasks: blocks of QB query rows of one (batch, head); each transposes the keys its rows can
  // see once, then handles its rows four at a time.
  constexpr int64_t QB = 16;
  const int64_t qBlocks = (p.seqQ + QB - 1) / QB;
  const int64_t tasks = p.batch * p.heads * qBlocks;
  const int64_t ldB = (p.seqK + 15) / 16 * 16 + 16;
  const double work = (double)p.batch * p.heads * p.seqQ * p.seqK * std::max<int64_t>(1, D);
  // Decoding (one query row) reads the whole KV cache for few multiply-adds: split it over the
  // team once that cache is more than a few hundred KiB.
  const int threads = work < (p.seqQ < 4 ? kParallelFmas / 64 : kParallelFmas) ? 1 : numThreads();
#pragma omp parallel num_threads(threads)
  {
    float* S = scratch(Scratch::AttnScores, (size_t)(4 * ldB));
    float* KT = scratch(Scratch::AttnKeysT, (size_t)(std::max<int64_t>(1, D) * ldB));
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t qb = t % qBlocks, h = (t / qBlocks) % p.heads, b = t / (qBlocks * p.heads);
      const int64_t kvh = h / group;
      const int64_t i0 = qb * QB, i1 = std::min<int64_t>(p.seqQ, i0 + QB);
      int64_t lo, hiMax;
      keyRange(p, b, i1 - 1, lo, hiMax);  // the last row sees the most keys
      const float* kb = k + b * p.kvStride + kvh * p.kvHeadStride;  // key 0 of this (b, kvh)
      const float* vb = v + b * p.kvStride + kvh * p.kvHeadStride;
      const int64_t kStride = p.kvRowStride;
      // Fewer than 4 rows (decoding one token): transposing the keys would cost more than it
      // saves, so take one dot product per key instead.
      const bool tiled = i1 - i0 >= 4;
      if (tiled && hiMax > lo) transposeRows(kb + lo * kStride, kStride, hiMax - lo, D, KT, ldB);
      for (int64_t r0 = i0; r0 < i1; r0 += 4) {
        const int64_t nr = std::min<int64_t>(4, i1 - r0);
        int64_t hiGroup = lo;
        for (int64_t r = 0; r < nr; ++r) {
          int64_t l2, h2;
          keyRange(p, b, r0 + r, l2, h2);
          hiGroup = std::max(hiGroup, h2);
        }
        const float* rows4[4];
        for (int r = 0; r < 4; ++r)
          rows4[r] = q + ((b * p.seqQ + r0 + std::min<int64_t>(r, nr - 1)) * p.heads + h) * D;
        if (tiled && hiGroup > lo) rowsTimesT(rows4, KT, ldB, D, hiGroup - lo, p.scale, S, ldB);
        if (!tiled)
          for (int64_t r = 0; r < nr; ++r)
            for (int64_t j = lo; j < hiGroup; ++j)
              S[r * ldB + (j - lo)] = dot(rows4[r], kb + j * kStride, D) * p.scale;
        for (int64_t r = 0; r < nr; ++r) {
          const int64_t i = r0 + r;
          float* orow = out + ((b * p.seqQ + i) * p.heads + h) * D;
          float* lrow = lse + (b * p.heads + h) * p.seqQ + i;
          int64_t l2, hi;
          keyRange(p, b, i, l2, hi);
          std::memset(orow, 0, sizeof(float) * D);
          if (hi <= lo) {
            *lrow = -INFINITY;
            continue;
          }
          float* sr = S + r * ldB;  // sr[j − lo] is the score of key j
          const int64_t n = hi - lo;
          float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
          for (int64_t j = 0; j < n; ++j) mx = std::max(mx, sr[j]);
          float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
          for (int64_t j = 0; j < n; ++j) {
            sr[j] = expVec(sr[j] - mx);
            sum += sr[j];
          }
          const float inv = 1.0f / sum;
          for (int64_t j = 0; j < n; ++j) axpy(orow, sr[j] * inv, vb + (lo + j) * kStride, D);
          *lrow = mx + std::log(sum);
        }
      }
    }
  }
}

static void attentionBackward(const float* q, const float* k, const float* v, const float* out,
                              const float* lse, const float* gOut, float* gq, float* gk, float* gv,
                              const AttnArgs& p) {
  if (p.seqQ >= kTiledMinRows && p.headDim > 0)
    return attentionBackwardTiled(q, k, v, out, lse, gOut, gq, gk, gv, p);
  const int64_t D = p.headDim, group = p.heads / p.kvHeads;
  const int64_t rows = p.batch * p.heads * p.seqQ;
  const double work = (double)p.batch * p.heads * p.seqQ * p.seqK * std::max<int64_t>(1, D);
  const int threads = work < kParallelFmas / 4 ? 1 : numThreads();
  const int64_t qStride = p.heads * D, kStride = p.kvHeads * D;
  constexpr int64_t QB = 16, KB = 16;
  const int64_t qBlocks = (p.seqQ + QB - 1) / QB, kBlocks = (p.seqK + KB - 1) / KB;
  const int64_t ld = (std::max(p.seqK, p.seqQ) + 15) / 16 * 16 + 16;
  // delta[b, h, i] = Σ_d gOut·out (the row term of the softmax backward).
  float* delta = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * ((rows + 15) / 16 * 16 + 16)));
#pragma omp parallel num_threads(threads)
  {
    float* S = scratch(Scratch::AttnScores, (size_t)(4 * ld));
    float* DP = scratch(Scratch::AttnDScores, (size_t)(4 * ld));
    float* AT = scratch(Scratch::AttnKeysT, (size_t)(std::max<int64_t>(1, D) * ld));
    float* BT = scratch(Scratch::AttnValuesT, (size_t)(std::max<int64_t>(1, D) * ld));
#pragma omp for schedule(static)
    for (int64_t idx = 0; idx < rows; ++idx) {
      const int64_t i = idx % p.seqQ, h = (idx / p.seqQ) % p.heads, b = idx / (p.seqQ * p.heads);
      const int64_t o = ((b * p.seqQ + i) * p.heads + h) * D;
      delta[idx] = dot(gOut + o, out + o, D);
    }
    // gq, per block of query rows: P and dP against transposed K and V, then dQ = scale·dS·K.
    const int64_t qTasks = p.batch * p.heads * qBlocks;
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < qTasks; ++t) {
      const int64_t qb = t % qBlocks, h = (t / qBlocks) % p.heads, b = t / (qBlocks * p.heads);
      const int64_t kvh = h / group;
      const int64_t i0 = qb * QB, i1 = std::min<int64_t>(p.seqQ, i0 + QB);
      int64_t lo, hiMax;
      keyRange(p, b, i1 - 1, lo, hiMax);
      const float* kb = k + (b * p.seqK * p.kvHeads + kvh) * D;
      const float* vb = v + (b * p.seqK * p.kvHeads + kvh) * D;
      if (hiMax > lo) {
        transposeRows(kb + lo * kStride, kStride, hiMax - lo, D, AT, ld);
        transposeRows(vb + lo * kStride, kStride, hiMax - lo, D, BT, ld);
      }
      for (int64_t r0 = i0; r0 < i1; r0 += 4) {
        const int64_t nr = std::min<int64_t>(4, i1 - r0);
        int64_t hiGroup = lo;
        for (int64_t r = 0; r < nr; ++r) {
          int64_t l2, h2;
          keyRange(p, b, r0 + r, l2, h2);
          hiGroup = std::max(hiGroup, h2);
        }
        const float* qr4[4];
        const float* gr4[4];
        for (int r = 0; r < 4; ++r) {
          const int64_t o = ((b * p.seqQ + r0 + std::min<int64_t>(r, nr - 1)) * p.heads + h) * D;
          qr4[r] = q + o;
          gr4[r] = gOut + o;
        }
        if (hiGroup > lo) {
          rowsTimesT(qr4, AT, ld, D, hiGroup - lo, p.scale, S, ld);
          rowsTimesT(gr4, BT, ld, D, hiGroup - lo, 1.0f, DP, ld);
        }
        for (int64_t r = 0; r < nr; ++r) {
          const int64_t i = r0 + r, idx = (b * p.heads + h) * p.seqQ + i;
          float* g = gq + ((b * p.seqQ + i) * p.heads + h) * D;
          std::memset(g, 0, sizeof(float) * D);
          int64_t l2, hi;
          keyRange(p, b, i, l2, hi);
          if (hi <= lo) continue;
          const int64_t n = hi - lo;
          float* sr = S + r * ld;
          const float* dpr = DP + r * ld;
          const float l = lse[idx], dl = delta[idx];
#pragma omp simd
          for (int64_t j = 0; j < n; ++j) sr[j] = expVec(sr[j] - l) * (dpr[j] - dl) * p.scale;
          for (int64_t j = 0; j < n; ++j) axpy(g, sr[j], kb + (lo + j) * kStride, D);
        }
      }
    }
    // gk, gv, per block of key rows and every query head of its group: P and dP against
    // transposed Q and gOut, then dV = Pᵀ·gOut and dK = scale·dSᵀ·Q.
    const int64_t kTasks = p.batch * p.kvHeads * kBlocks;
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < kTasks; ++t) {
      const int64_t kbk = t % kBlocks, kvh = (t / kBlocks) % p.kvHeads,
                    b = t / (kBlocks * p.kvHeads);
      const int64_t j0 = kbk * KB, j1 = std::min<int64_t>(p.seqK, j0 + KB);
      const int64_t ks = p.keyStart ? std::max<int64_t>(0, p.keyStart[b]) : 0;
      const int64_t off = p.seqK - p.seqQ;  // query i sits at key position off + i
      for (int64_t j = j0; j < j1; ++j) {
        const int64_t ko = ((b * p.seqK + j) * p.kvHeads + kvh) * D;
        std::memset(gk + ko, 0, sizeof(float) * D);
        std::memset(gv + ko, 0, sizeof(float) * D);
      }
      // Queries that see key j: i ≥ j − off when causal; none when j < keyStart.
      const int64_t iLoBlock = p.causal ? std::max<int64_t>(0, j0 - off) : 0;
      if (iLoBlock >= p.seqQ || j1 <= ks) continue;
      const int64_t nq = p.seqQ - iLoBlock;
      for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
        const float* qh = q + ((b * p.seqQ + iLoBlock) * p.heads + h) * D;
        const float* gh = gOut + ((b * p.seqQ + iLoBlock) * p.heads + h) * D;
        transposeRows(qh, qStride, nq, D, AT, ld);
        transposeRows(gh, qStride, nq, D, BT, ld);
        const float* lrow = lse + (b * p.heads + h) * p.seqQ + iLoBlock;
        const float* drow = delta + (b * p.heads + h) * p.seqQ + iLoBlock;
        for (int64_t r0 = j0; r0 < j1; r0 += 4) {
          const int64_t nr = std::min<int64_t>(4, j1 - r0);
          const float* kr4[4];
          const float* vr4[4];
          for (int r = 0; r < 4; ++r) {
            const int64_t ko = ((b * p.seqK + r0 + std::min<int64_t>(r, nr - 1)) * p.kvHeads + kvh) * D;
            kr4[r] = k + ko;
            vr4[r] = v + ko;
          }
          rowsTimesT(kr4, AT, ld, D, nq, p.scale, S, ld);
          rowsTimesT(vr4, BT, ld, D, nq, 1.0f, DP, ld);
          for (int64_t r = 0; r < nr; ++r) {
            const int64_t j = r0 + r;
            if (j < ks) continue;
            const int64_t ko = ((b * p.seqK + j) * p.kvHeads + kvh) * D;
            // Row r covers queries iLoBlock + c; those before this key's first query are masked.
            const int64_t c0 = p.causal ? std::max<int64_t>(0, j - off) - iLoBlock : 0;
            float* pr = S + r * ld;
            float* dsr = DP + r * ld;
#pragma omp simd
            for (int64_t c = c0; c < nq; ++c) {
              const float pij = expVec(pr[c] - lrow[c]);
              pr[c] = pij;
              dsr[c] = pij * (dsr[c] - drow[c]) * p.scale;
            }
            for (int64_t c = c0; c < nq; ++c) {
              axpy(gv + ko, pr[c], gh + c * qStride, D);
              axpy(gk + ko, dsr[c], qh + c * qStride, D);
            }
          }
        }
      }
    }
  }
  std::free(delta);
}
