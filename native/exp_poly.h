// exp(x) that compilers vectorise (Cephes expf: 2ⁿ·P(r), about 2 ulp) for the attention,
// softmax and SiLU kernels; std::exp is a scalar libm call and was half of the attention time.
// Finite x ≤ 88; inputs below −87 give ~1e-38 instead of a denormal.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace rl4qe {

// static: each translation unit (each compiled for its own instruction set) keeps its own copy,
// so the linker can never hand AVX-512 code to the baseline kernels.
static inline float expPoly(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x / ln 2)
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * (r * r) + r + 1.0f;
  const int32_t bits = ((int32_t)n + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return y * scale;
}

}  // namespace rl4qe
