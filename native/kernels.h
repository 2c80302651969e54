// Interfaces between the N-API layer (addon.cc) and the kernels.
//
// The compute-heavy kernels (GEMM, attention, the FMA peak probe) are compiled once per
// instruction set from one source (isa_impl.h) into separate translation units, each with its
// own -m flags; a table of function pointers per ISA is chosen at run time from the CPU
// features (cpu.cc). Everything else (elementwise, rows, optimiser) is memory-bound and lives in
// ops.cc, compiled for the baseline ISA.
#pragma once
#include <cstddef>
#include <cstdint>

namespace rl4qe {

struct MatmulArgs {
  int64_t batch, m, k, n;
  bool transA, transB;
  int64_t strideA, strideB, strideOut;
  const float* a;
  const float* b;
  float* c;
  float alpha;
  bool accumulate;
};

/** One plain (non-batched) sgemm, row-major: C = alpha·op(A)·op(B) (+ C when accumulate). */
struct SgemmArgs {
  int64_t m, n, k;
  bool transA, transB;
  const float* a;
  int64_t lda;
  const float* b;
  int64_t ldb;
  float* c;
  int64_t ldc;
  float alpha;
  bool accumulate;
};

struct AttnArgs {
  int64_t batch, seqQ, seqK, heads, kvHeads, headDim;
  float scale;
  bool causal;
  const int32_t* keyStart;  // may be null
  int64_t kvStride;         // elements between batch entries of k and v (forward; a KV cache)
};

struct KernelTable {
  const char* name;
  /** Register-tile size of the GEMM micro-kernel, for `doctor`. */
  int mr, nr;
  void (*matmul)(const MatmulArgs&);
  /** Measured fp32 FMA peak over `threads` threads, GFLOP/s, running for about `seconds`. */
  double (*peak)(double seconds, int threads);
  void (*attention)(const float* q, const float* k, const float* v, float* out, float* lse,
                    const AttnArgs& p);
  void (*attentionBackward)(const float* q, const float* k, const float* v, const float* out,
                            const float* lse, const float* gOut, float* gq, float* gk, float* gv,
                            const AttnArgs& p);
};

const KernelTable* tableGeneric();
#if defined(__x86_64__) || defined(_M_X64)
const KernelTable* tableAvx2();
const KernelTable* tableAvx512();
#endif

/** Thread count used by every OpenMP region (RL4QE_THREADS, default: all cores). */
int numThreads();
void setNumThreads(int n);

/** 64-byte aligned scratch that grows and is reused per thread. */
float* scratch(int slot, size_t floats);

}  // namespace rl4qe
