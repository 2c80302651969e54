// Memory-bound kernels (elementwise, rows, gather/scatter, optimiser), baseline ISA, OpenMP.
// Arguments are validated by addon.cc before they get here.
#pragma once
#include <cstdint>

namespace rl4qe {
namespace ops {

enum BinaryOp { B_ADD, B_SUB, B_MUL, B_DIV, B_MAX, B_MIN, B_EQ, B_GT };
enum UnaryOp {
  U_NEG, U_EXP, U_LOG, U_SQRT, U_RSQRT, U_SIGMOID, U_SILU, U_TANH, U_RELU, U_ABS, U_SQUARE, U_RECIP
};
enum ReduceOp { R_SUM, R_MAX };

void copyStrided(const float* src, int64_t srcOff, const int64_t* srcStrides, float* dst,
                 int64_t dstOff, const int64_t* dstStrides, const int64_t* shape, int nd);
void fill(float* out, int64_t n, float v);
void binary(int op, const float* a, const int64_t* as, const float* b, const int64_t* bs,
            float* out, const int64_t* shape, int nd);
void unary(int op, const float* x, float* out, int64_t n);
void unaryBackward(int op, const float* x, const float* y, const float* gy, float* gx, int64_t n,
                   bool accumulate);
void affine(const float* x, float s, float t, float* out, int64_t n);
void reduce(int op, const float* x, int64_t outer, int64_t axis, int64_t inner, float* out);
void argmax(const float* x, int64_t outer, int64_t axis, int64_t inner, int32_t* out);
void softmax(const float* x, int64_t rows, int64_t cols, float* out, bool log);
void softmaxBackward(const float* y, const float* gy, int64_t rows, int64_t cols, float* gx,
                     bool log);
void logsumexp(const float* x, int64_t rows, int64_t cols, float* out);
void rmsnorm(const float* x, const float* w, int64_t rows, int64_t cols, float eps, float* out,
             float* rstd);
void rmsnormBackward(const float* x, const float* w, const float* rstd, const float* gy,
                     int64_t rows, int64_t cols, float* gx, float* gw);
void rope(const float* x, float* out, int64_t batch, int64_t seq, int64_t heads, int64_t headDim,
          const int32_t* positions, const float* cos, const float* sin, bool inverse);
void embedding(const float* table, const int32_t* ids, int64_t n, int64_t dim, float* out);
void embeddingBackward(const float* gOut, const int32_t* ids, int64_t n, int64_t dim,
                       float* gTable);
void adamw(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
           float beta2, float eps, float weightDecay, int64_t step);

}  // namespace ops
}  // namespace rl4qe
