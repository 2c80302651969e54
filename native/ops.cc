// Memory-bound kernels. Plain loops the compiler vectorises; OpenMP once the work is large enough
// to pay for waking the team. Sums over a row accumulate in double (rows can be 150k wide).
#include "ops.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "exp_poly.h"
#include "kernels.h"

namespace rl4qe {
namespace ops {

namespace {
// Below this much work (≈ elements, weighted by cost) waking the team costs more than it saves.
constexpr int64_t kParallelMin = 1 << 17;

inline int teamFor(int64_t work) { return work >= kParallelMin ? numThreads() : 1; }

inline float sigmoidf(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// SiLU and sigmoid over large activations (the MLP's gate: batch·seq·inner elements) were bound by
// the scalar libm expf call. These loops use a polynomial exp the compiler vectorises (Cephes
// expf, about 2 ulp, the same as the attention kernels use) and are compiled for AVX-512, AVX2
// and the baseline, chosen once at load by the CPU (GCC function multiversioning).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define RL4QE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define RL4QE_CLONES
#endif

inline float sigmoidPoly(float x) { return 1.0f / (1.0f + expPoly(-x)); }

// out may equal x (in place): element i is read before it is written.
RL4QE_CLONES void siluRange(const float* x, float* out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * sigmoidPoly(x[i]);
}
RL4QE_CLONES void sigmoidRange(const float* x, float* out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = sigmoidPoly(x[i]);
}
// gx = gy · silu'(x) (+ gx when acc).
RL4QE_CLONES void siluBackwardRange(const float* x, const float* gy, float* gx, int64_t n,
                                    bool acc) {
  if (acc) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const float s = sigmoidPoly(x[i]);
      gx[i] += gy[i] * (s * (1.0f + x[i] * (1.0f - s)));
    }
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const float s = sigmoidPoly(x[i]);
      gx[i] = gy[i] * (s * (1.0f + x[i] * (1.0f - s)));
    }
  }
}

constexpr int64_t kChunk = 4096;
template <typename F>
void chunked(int64_t n, int64_t cost, F f) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for num_threads(teamFor(n * cost)) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) f(c * kChunk, std::min(kChunk, n - c * kChunk));
}

template <int OP>
inline float bin(float a, float b) {
  if constexpr (OP == B_ADD) return a + b;
  if constexpr (OP == B_SUB) return a - b;
  if constexpr (OP == B_MUL) return a * b;
  if constexpr (OP == B_DIV) return a / b;
  if constexpr (OP == B_MAX) return a >= b ? a : b;  // NaN in either gives b, as in reference
  if constexpr (OP == B_MIN) return a <= b ? a : b;
  if constexpr (OP == B_EQ) return a == b ? 1.0f : 0.0f;
  if constexpr (OP == B_GT) return a > b ? 1.0f : 0.0f;
  return 0.0f;
}

template <int OP>
void binaryT(const float* a, const int64_t* as, const float* b, const int64_t* bs, float* out,
             const int64_t* shape, int nd) {
  const int64_t inner = nd > 0 ? shape[nd - 1] : 1;
  const int64_t sa = nd > 0 ? as[nd - 1] : 0, sb = nd > 0 ? bs[nd - 1] : 0;
  int64_t outer = 1;
  for (int d = 0; d < nd - 1; ++d) outer *= shape[d];
  if (inner == 0 || outer == 0) return;
#pragma omp parallel for num_threads(teamFor(outer * inner)) schedule(static)
  for (int64_t o = 0; o < outer; ++o) {
    int64_t rem = o, oa = 0, ob = 0;
    for (int d = nd - 2; d >= 0; --d) {
      const int64_t i = rem % shape[d];
      rem /= shape[d];
      oa += i * as[d];
      ob += i * bs[d];
    }
    const float* pa = a + oa;
    const float* pb = b + ob;
    float* po = out + o * inner;
    if (sa == 1 && sb == 1) {
      for (int64_t i = 0; i < inner; ++i) po[i] = bin<OP>(pa[i], pb[i]);
    } else if (sa == 1 && sb == 0) {
      const float y = pb[0];
      for (int64_t i = 0; i < inner; ++i) po[i] = bin<OP>(pa[i], y);
    } else if (sa == 0 && sb == 1) {
      const float x = pa[0];
      for (int64_t i = 0; i < inner; ++i) po[i] = bin<OP>(x, pb[i]);
    } else {
      for (int64_t i = 0; i < inner; ++i) po[i] = bin<OP>(pa[i * sa], pb[i * sb]);
    }
  }
}

template <int OP>
inline float un(float x) {
  if constexpr (OP == U_NEG) return -x;
  if constexpr (OP == U_EXP) return std::exp(x);
  if constexpr (OP == U_LOG) return std::log(x);
  if constexpr (OP == U_SQRT) return std::sqrt(x);
  if constexpr (OP == U_RSQRT) return 1.0f / std::sqrt(x);
  if constexpr (OP == U_SIGMOID) return sigmoidf(x);
  if constexpr (OP == U_SILU) return x * sigmoidf(x);
  if constexpr (OP == U_TANH) return std::tanh(x);
  if constexpr (OP == U_RELU) return x > 0.0f ? x : 0.0f;
  if constexpr (OP == U_ABS) return std::fabs(x);
  if constexpr (OP == U_SQUARE) return x * x;
  if constexpr (OP == U_RECIP) return 1.0f / x;
  return 0.0f;
}

template <int OP>
void unaryT(const float* x, float* out, int64_t n) {
  if constexpr (OP == U_SILU) {
    return chunked(n, 8, [&](int64_t i, int64_t len) { siluRange(x + i, out + i, len); });
  }
  if constexpr (OP == U_SIGMOID) {
    return chunked(n, 8, [&](int64_t i, int64_t len) { sigmoidRange(x + i, out + i, len); });
  }
#pragma omp parallel for num_threads(teamFor(n * 8)) schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = un<OP>(x[i]);
}

// d op(x)/dx from x and y = op(x).
template <int OP>
inline float der(float x, float y) {
  if constexpr (OP == U_NEG) return -1.0f;
  if constexpr (OP == U_EXP) return y;
  if constexpr (OP == U_LOG) return 1.0f / x;
  if constexpr (OP == U_SQRT) return 0.5f / y;
  if constexpr (OP == U_RSQRT) return -0.5f * y * y * y;
  if constexpr (OP == U_SIGMOID) return y * (1.0f - y);
  if constexpr (OP == U_SILU) {
    const float s = sigmoidf(x);
    return s * (1.0f + x * (1.0f - s));
  }
  if constexpr (OP == U_TANH) return 1.0f - y * y;
  if constexpr (OP == U_RELU) return x > 0.0f ? 1.0f : 0.0f;
  if constexpr (OP == U_ABS) return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f);
  if constexpr (OP == U_SQUARE) return 2.0f * x;
  if constexpr (OP == U_RECIP) return -y * y;
  return 0.0f;
}

template <int OP>
void unaryBackwardT(const float* x, const float* y, const float* gy, float* gx, int64_t n,
                    bool acc) {
  if constexpr (OP == U_SILU) {
    return chunked(n, 8, [&](int64_t i, int64_t len) {
      siluBackwardRange(x + i, gy + i, gx + i, len, acc);
    });
  }
#pragma omp parallel for num_threads(teamFor(n * 8)) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float g = gy[i] * der<OP>(x ? x[i] : 0.0f, y ? y[i] : 0.0f);
    gx[i] = acc ? gx[i] + g : g;
  }
}
}  // namespace

void copyStrided(const float* src, int64_t srcOff, const int64_t* ss, float* dst, int64_t dstOff,
                 const int64_t* ds, const int64_t* shape, int nd) {
  int64_t total = 1;
  for (int d = 0; d < nd; ++d) total *= shape[d];
  if (total == 0) return;
  if (nd == 0) {
    dst[dstOff] = src[srcOff];
    return;
  }
  const int64_t inner = shape[nd - 1], si = ss[nd - 1], di = ds[nd - 1];
  const int64_t outer = total / inner;
#pragma omp parallel for num_threads(teamFor(total)) schedule(static)
  for (int64_t o = 0; o < outer; ++o) {
    int64_t rem = o, os = srcOff, od = dstOff;
    for (int d = nd - 2; d >= 0; --d) {
      const int64_t i = rem % shape[d];
      rem /= shape[d];
      os += i * ss[d];
      od += i * ds[d];
    }
    const float* s = src + os;
    float* t = dst + od;
    if (si == 1 && di == 1) {
      std::memmove(t, s, sizeof(float) * inner);
    } else {
      for (int64_t i = 0; i < inner; ++i) t[i * di] = s[i * si];
    }
  }
}

void fill(float* out, int64_t n, float v) {
#pragma omp parallel for num_threads(teamFor(n)) schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = v;
}

void binary(int op, const float* a, const int64_t* as, const float* b, const int64_t* bs,
            float* out, const int64_t* shape, int nd) {
  switch (op) {
    case B_ADD: return binaryT<B_ADD>(a, as, b, bs, out, shape, nd);
    case B_SUB: return binaryT<B_SUB>(a, as, b, bs, out, shape, nd);
    case B_MUL: return binaryT<B_MUL>(a, as, b, bs, out, shape, nd);
    case B_DIV: return binaryT<B_DIV>(a, as, b, bs, out, shape, nd);
    case B_MAX: return binaryT<B_MAX>(a, as, b, bs, out, shape, nd);
    case B_MIN: return binaryT<B_MIN>(a, as, b, bs, out, shape, nd);
    case B_EQ: return binaryT<B_EQ>(a, as, b, bs, out, shape, nd);
    case B_GT: return binaryT<B_GT>(a, as, b, bs, out, shape, nd);
  }
}

#define RL4QE_UNARY_CASES(F, ...)                 \
  switch (op) {                                   \
    case U_NEG: return F<U_NEG>(__VA_ARGS__);     \
    case U_EXP: return F<U_EXP>(__VA_ARGS__);     \
    case U_LOG: return F<U_LOG>(__VA_ARGS__);     \
    case U_SQRT: return F<U_SQRT>(__VA_ARGS__);   \
    case U_RSQRT: return F<U_RSQRT>(__VA_ARGS__); \
    case U_SIGMOID: return F<U_SIGMOID>(__VA_ARGS__); \
    case U_SILU: return F<U_SILU>(__VA_ARGS__);   \
    case U_TANH: return F<U_TANH>(__VA_ARGS__);   \
    case U_RELU: return F<U_RELU>(__VA_ARGS__);   \
    case U_ABS: return F<U_ABS>(__VA_ARGS__);     \
    case U_SQUARE: return F<U_SQUARE>(__VA_ARGS__); \
    case U_RECIP: return F<U_RECIP>(__VA_ARGS__); \
  }

void unary(int op, const float* x, float* out, int64_t n) { RL4QE_UNARY_CASES(unaryT, x, out, n) }

void unaryBackward(int op, const float* x, const float* y, const float* gy, float* gx, int64_t n,
                   bool accumulate) {
  RL4QE_UNARY_CASES(unaryBackwardT, x, y, gy, gx, n, accumulate)
}

void affine(const float* x, float s, float t, float* out, int64_t n) {
#pragma omp parallel for num_threads(teamFor(n)) schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * s + t;
}

namespace {
RL4QE_CLONES double sumRow(const float* r, int64_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t a = 0; a < n; ++a) s += r[a];
  return s;
}
}  // namespace

void reduce(int op, const float* x, int64_t outer, int64_t axis, int64_t inner, float* out) {
  if (outer == 0 || inner == 0) return;
  if (inner == 1) {
#pragma omp parallel for num_threads(teamFor(outer * axis)) schedule(static)
    for (int64_t o = 0; o < outer; ++o) {
      const float* r = x + o * axis;
      if (op == R_SUM) {
        out[o] = (float)sumRow(r, axis);
      } else {
        float m = -INFINITY;
        for (int64_t a = 0; a < axis; ++a) m = (r[a] > m || std::isnan(r[a])) ? r[a] : m;
        out[o] = m;
      }
    }
    return;
  }
  // Middle axis: walk rows of `inner` contiguous floats, accumulate a double row per task.
#pragma omp parallel num_threads(teamFor(outer * axis * inner))
  {
    std::vector<double> acc((size_t)inner);
#pragma omp for schedule(static)
    for (int64_t o = 0; o < outer; ++o) {
      float* po = out + o * inner;
      if (op == R_SUM) {
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t a = 0; a < axis; ++a) {
          const float* r = x + (o * axis + a) * inner;
          for (int64_t i = 0; i < inner; ++i) acc[i] += r[i];
        }
        for (int64_t i = 0; i < inner; ++i) po[i] = (float)acc[i];
      } else {
        for (int64_t i = 0; i < inner; ++i) po[i] = -INFINITY;
        for (int64_t a = 0; a < axis; ++a) {
          const float* r = x + (o * axis + a) * inner;
          for (int64_t i = 0; i < inner; ++i) po[i] = (r[i] > po[i] || std::isnan(r[i])) ? r[i] : po[i];
        }
      }
    }
  }
}

void argmax(const float* x, int64_t outer, int64_t axis, int64_t inner, int32_t* out) {
  // First index of the maximum (ties and NaN as in reference: strict >, starting from −inf).
#pragma omp parallel for num_threads(teamFor(outer * axis * inner)) schedule(static)
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      const float* base = x + o * axis * inner + i;
      int32_t best = 0;
      float bv = -INFINITY;
      for (int64_t a = 0; a < axis; ++a)
        if (base[a * inner] > bv) {
          bv = base[a * inner];
          best = (int32_t)a;
        }
      out[o * inner + i] = best;
    }
}

void softmax(const float* x, int64_t rows, int64_t cols, float* out, bool log) {
#pragma omp parallel for num_threads(teamFor(rows * cols * 4)) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* o = out + r * cols;
    float mx = -INFINITY;
    for (int64_t c = 0; c < cols; ++c) mx = std::max(mx, xr[c]);
    if (mx == -INFINITY) mx = 0.0f;  // all −inf: keep NaN-free arithmetic below
    double sum = 0.0;
    if (log) {
      for (int64_t c = 0; c < cols; ++c) sum += std::exp(xr[c] - mx);
      const float lse = mx + (float)std::log(sum);
      for (int64_t c = 0; c < cols; ++c) o[c] = xr[c] - lse;
    } else {
      for (int64_t c = 0; c < cols; ++c) {
        o[c] = std::exp(xr[c] - mx);
        sum += o[c];
      }
      const float inv = (float)(1.0 / sum);
      for (int64_t c = 0; c < cols; ++c) o[c] *= inv;
    }
  }
}

void softmaxBackward(const float* y, const float* gy, int64_t rows, int64_t cols, float* gx,
                     bool log) {
#pragma omp parallel for num_threads(teamFor(rows * cols * 2)) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* yr = y + r * cols;
    const float* g = gy + r * cols;
    float* o = gx + r * cols;
    double s = 0.0;
    if (log) {
      for (int64_t c = 0; c < cols; ++c) s += g[c];
      const float sf = (float)s;
      for (int64_t c = 0; c < cols; ++c) o[c] = g[c] - std::exp(yr[c]) * sf;
    } else {
      for (int64_t c = 0; c < cols; ++c) s += (double)g[c] * yr[c];
      const float sf = (float)s;
      for (int64_t c = 0; c < cols; ++c) o[c] = yr[c] * (g[c] - sf);
    }
  }
}

void logsumexp(const float* x, int64_t rows, int64_t cols, float* out) {
#pragma omp parallel for num_threads(teamFor(rows * cols * 4)) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float mx = -INFINITY;
    for (int64_t c = 0; c < cols; ++c) mx = std::max(mx, xr[c]);
    if (mx == -INFINITY) {
      out[r] = mx;
      continue;
    }
    double sum = 0.0;
    for (int64_t c = 0; c < cols; ++c) sum += std::exp(xr[c] - mx);
    out[r] = mx + (float)std::log(sum);
  }
}

namespace {
// One RMSNorm row (sum of squares in double, as before), multiversioned like the SiLU loops so
// the double accumulation runs 8 lanes wide on AVX-512 instead of 2 on the baseline ISA.
RL4QE_CLONES float rmsRow(const float* xr, const float* w, int64_t cols, float eps, float* o) {
  double ss = 0.0;
#pragma omp simd reduction(+ : ss)
  for (int64_t c = 0; c < cols; ++c) ss += (double)xr[c] * xr[c];
  const float rs = (float)(1.0 / std::sqrt(ss / (double)cols + (double)eps));
#pragma omp simd
  for (int64_t c = 0; c < cols; ++c) o[c] = xr[c] * rs * w[c];
  return rs;
}
}  // namespace

namespace {
RL4QE_CLONES void rmsBackRow(const float* xr, const float* g, const float* w, float rs,
                             int64_t cols, float* o, double* mine) {
  double dotv = 0.0;
#pragma omp simd reduction(+ : dotv)
  for (int64_t c = 0; c < cols; ++c) dotv += (double)g[c] * w[c] * xr[c];
  const float k = (float)(dotv / (double)cols) * rs * rs * rs;
#pragma omp simd
  for (int64_t c = 0; c < cols; ++c) o[c] = rs * w[c] * g[c] - k * xr[c];
  if (mine) {
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) mine[c] += (double)g[c] * xr[c] * rs;
  }
}
}  // namespace

void rmsnorm(const float* x, const float* w, int64_t rows, int64_t cols, float eps, float* out,
             float* rstd) {
#pragma omp parallel for num_threads(teamFor(rows * cols * 2)) schedule(static)
  for (int64_t r = 0; r < rows; ++r) rstd[r] = rmsRow(x + r * cols, w, cols, eps, out + r * cols);
}

void rmsnormBackward(const float* x, const float* w, const float* rstd, const float* gy,
                     int64_t rows, int64_t cols, float* gx, float* gw) {
  // gx = r·w·gy − r³·x·(Σ gy·w·x)/cols;  gw += Σ_rows gy·x·r (per-thread partials, then summed).
  const int team = teamFor(rows * cols * 3);
  std::vector<double> partial(gw ? (size_t)team * cols : 0, 0.0);
#pragma omp parallel num_threads(team)
  {
    double* mine = gw ? partial.data() + (size_t)omp_get_thread_num() * cols : nullptr;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      rmsBackRow(x + r * cols, gy + r * cols, w, rstd[r], cols, gx + r * cols, mine);
    }
  }
  if (gw) {
    for (int64_t c = 0; c < cols; ++c) {
      double s = 0.0;
      for (int t = 0; t < team; ++t) s += partial[(size_t)t * cols + c];
      gw[c] += (float)s;
    }
  }
}

void rope(const float* x, float* out, int64_t batch, int64_t seq, int64_t heads, int64_t headDim,
          const int32_t* positions, const float* cosT, const float* sinT, bool inverse) {
  const int64_t half = headDim / 2;
  const int64_t rows = batch * seq;
  const float sgn = inverse ? -1.0f : 1.0f;
#pragma omp parallel for num_threads(teamFor(rows * heads * headDim * 2)) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* c = cosT + (int64_t)positions[r] * half;
    const float* s = sinT + (int64_t)positions[r] * half;
    for (int64_t h = 0; h < heads; ++h) {
      const float* xr = x + (r * heads + h) * headDim;
      float* o = out + (r * heads + h) * headDim;
      for (int64_t i = 0; i < half; ++i) {
        const float x1 = xr[i], x2 = xr[i + half], si = sgn * s[i];
        o[i] = x1 * c[i] - x2 * si;
        o[i + half] = x2 * c[i] + x1 * si;
      }
    }
  }
}

void embedding(const float* table, const int32_t* ids, int64_t n, int64_t dim, float* out) {
#pragma omp parallel for num_threads(teamFor(n * dim)) schedule(static)
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(out + i * dim, table + (int64_t)ids[i] * dim, sizeof(float) * dim);
}

void embeddingBackward(const float* gOut, const int32_t* ids, int64_t n, int64_t dim,
                       float* gTable) {
  // Threads own column ranges, so repeated ids never race.
  const int team = dim >= 64 ? teamFor(n * dim) : 1;
#pragma omp parallel num_threads(team)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t c0 = dim * t / nt, c1 = dim * (t + 1) / nt;
    for (int64_t i = 0; i < n; ++i) {
      float* dst = gTable + (int64_t)ids[i] * dim;
      const float* src = gOut + i * dim;
      for (int64_t c = c0; c < c1; ++c) dst[c] += src[c];
    }
  }
}

void adamw(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
           float beta2, float eps, float weightDecay, int64_t step) {
  const double bc1 = 1.0 - std::pow((double)beta1, (double)step);
  const double bc2 = 1.0 - std::pow((double)beta2, (double)step);
  const float stepSize = (float)(lr / bc1);
  const float bc2Sqrt = (float)std::sqrt(bc2);
  const float decay = 1.0f - lr * weightDecay;
#pragma omp parallel for num_threads(teamFor(n * 4)) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float g = grad[i];
    const float mi = beta1 * m[i] + (1.0f - beta1) * g;
    const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = param[i] * decay - stepSize * mi / (std::sqrt(vi) / bc2Sqrt + eps);
  }
}

}  // namespace ops
}  // namespace rl4qe
