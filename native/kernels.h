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
  int64_t kvRowStride;      // elements between consecutive keys of one head (kvHeads·headDim)
  int64_t kvHeadStride;     // elements between KV heads (headDim; capacity·headDim head-major)
};

/** A weight kept in a ggml block format (src/backend/quant.ts): `rows` rows of `cols` values, each
 * row cols / blockSize blocks of typeSize bytes at data + row · rowBytes (unaligned). */
struct QuantArgs {
  int type;
  int64_t rows, cols;
  const uint8_t* data;
};

/** Block layout of a ggml type the quantised kernels understand (the QUANT_BLOCKS table of
 * src/backend/quant.ts); false for any other type. */
inline bool quantLayout(int type, int& blockSize, int& typeSize) {
  switch (type) {
    case 0: blockSize = 1, typeSize = 4; return true;     // F32
    case 1: blockSize = 1, typeSize = 2; return true;     // F16
    case 2: blockSize = 32, typeSize = 18; return true;   // Q4_0
    case 3: blockSize = 32, typeSize = 20; return true;   // Q4_1
    case 6: blockSize = 32, typeSize = 22; return true;   // Q5_0
    case 7: blockSize = 32, typeSize = 24; return true;   // Q5_1
    case 8: blockSize = 32, typeSize = 34; return true;   // Q8_0
    case 12: blockSize = 256, typeSize = 144; return true;  // Q4_K
    case 13: blockSize = 256, typeSize = 176; return true;  // Q5_K
    case 14: blockSize = 256, typeSize = 210; return true;  // Q6_K
    case 30: blockSize = 1, typeSize = 2; return true;    // BF16
    default: return false;
  }
}

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
  /** out [m, w.rows] = x [m, w.cols] · dequant(w)ᵀ (+ out). */
  void (*qmatmul)(const float* x, const QuantArgs& w, float* out, int64_t m, bool accumulate);
  /** out [m, w.cols] = g [m, w.rows] · dequant(w) (+ out). */
  void (*qmatmulT)(const float* g, const QuantArgs& w, float* out, int64_t m, bool accumulate);
  /** out [count, w.cols]: rows ids[i] of dequant(w) (ids checked by the caller). */
  void (*qembedding)(const QuantArgs& w, const int32_t* ids, int64_t count, float* out);
  /** Rows of x qmatmulInt8 takes per pass over the weight (0: the set has no int8 path). */
  int int8MaxM;
  /** The units the products of this set use, for `doctor` and the benches. */
  const char* units;
  /** qmatmul with x quantised per block to int8 and int8 dot products (qdot_vnni.cc), within
   * the documented tolerance of qmatmul (the float path, the reference): used where the caller
   * allows it (decoding steps); null in sets without it. Falls back to qmatmul for formats
   * without an int8 path (F32, F16, BF16). Each row's result depends on that row alone. */
  void (*qmatmulInt8)(const float* x, const QuantArgs& w, float* out, int64_t m, bool accumulate);
};

const KernelTable* tableGeneric();
#if defined(__x86_64__) || defined(_M_X64)
const KernelTable* tableAvx2();
const KernelTable* tableAvx512();
/** avx512 with quantised small-M products on int8 dot products (qdot_vnni.cc): needs AVX512-VNNI. */
const KernelTable* tableAvx512Vnni();
#endif

#if defined(__x86_64__) || defined(_M_X64)
/** bf16 GEMM (gemm_bf16.cc, AVX512-BF16): only call where the CPU has avx512bf16. */
namespace bf16 {
int64_t packedBf16Words(int64_t k, int64_t n);
void packB(const float* b, int64_t ldb, bool transB, int64_t k, int64_t n, uint32_t* out);
void packTransposed(const uint32_t* src, int64_t k, int64_t n, uint32_t* out);
void gemmPacked(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, bool transA,
                const uint32_t* bp, float* c, int64_t ldc, float alpha, bool accumulate);
double peak(double seconds, int threads);
}  // namespace bf16
#endif

/** Thread count used by every OpenMP region (RL4QE_THREADS, default: all cores). */
int numThreads();
void setNumThreads(int n);

/**
 * Per-thread scratch buffers, one slot per use: two buffers live at the same time never share a
 * slot (a kernel that calls another, e.g. the quantised product calling the packed GEMM, keeps
 * its own slot alive across the call). Each slot is 64-byte aligned, grows and is reused.
 */
enum class Scratch : int {
  GemmBPanels = 0,       // sgemm: packed panels of op(B), [ncPanels][NR × k]
  GemmABlock = 1,        // sgemm: packed block of op(A), [MC × kc]
  AttnScores = 2,        // attention (short rows): 4 query rows of scores / probabilities
  AttnKeysT = 3,         // attention: K transposed, [D × seqK]
  AttnDScores = 4,       // attention backward (short rows): dP for 4 query rows
  AttnValuesT = 5,       // attention backward: V transposed, [D × seqK]
  AttnTileScores = 6,    // tiled attention: a query block's scores, [kAttnQB × seqK]
  AttnTileDScores = 7,   // tiled attention backward: a query block's dP
  AttnTileDK = 8,        // tiled attention backward: per-task private dK
  AttnTileDV = 9,        // tiled attention backward: per-task private dV
  GemmNarrowB = 10,      // sgemmNarrow: op(B) packed for a narrow n
  GemmShortKB = 11,      // sgemmShortK: op(B) transposed for a short k
  QuantPanel = 12,       // quantised product, many rows: decoded weight rows fed to sgemm
  QuantRows = 13,        // quantised product, few rows: four decoded weight rows
  Int8Activations = 14,  // int8 decoding: quantised activation rows and their block sums
  Count = 16,
};

/** The calling thread's buffer for `slot`, at least `floats` long. */
float* scratch(Scratch slot, size_t floats);

}  // namespace rl4qe
