// N-API entry points of the rl4qe native backend (node-addon-api, C++ exceptions on).
//
// Every entry point validates its arguments against the buffers it was given (type, length,
// index ranges) and throws a JS error instead of touching memory out of range: a released
// (detached) buffer has length 0 and so fails these checks rather than crashing.
#define NAPI_VERSION 8
#include <dlfcn.h>
#if defined(__GLIBC__)
#include <malloc.h>
#include <sys/mman.h>
#endif
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <iterator>
#include <vector>

#include "allocator.h"
#include "kernels.h"
#include "ops.h"

using namespace Napi;

namespace rl4qe {
namespace {

// ---- kernel set chosen from the CPU features --------------------------------------------------

struct Features {
  std::vector<std::string> list;
  bool avx2 = false, fma = false, f16c = false, avx512f = false, avx512dq = false,
       avx512bw = false, avx512vl = false, avx512vnni = false, avx512bf16 = false;
};

Features detectFeatures() {
  Features f;
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
#define RL4QE_FEATURE(name) \
  if (__builtin_cpu_supports(name)) f.list.push_back(name);
  RL4QE_FEATURE("sse4.2")
  RL4QE_FEATURE("avx")
  RL4QE_FEATURE("avx2")
  RL4QE_FEATURE("fma")
  RL4QE_FEATURE("f16c")
  RL4QE_FEATURE("avx512f")
  RL4QE_FEATURE("avx512dq")
  RL4QE_FEATURE("avx512bw")
  RL4QE_FEATURE("avx512vl")
  RL4QE_FEATURE("avx512vnni")
  RL4QE_FEATURE("avx512bf16")
  RL4QE_FEATURE("avxvnni")
  RL4QE_FEATURE("amx-tile")
  RL4QE_FEATURE("amx-bf16")
  RL4QE_FEATURE("amx-int8")
#undef RL4QE_FEATURE
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.f16c = __builtin_cpu_supports("f16c");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512dq = __builtin_cpu_supports("avx512dq");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512vnni = __builtin_cpu_supports("avx512vnni");
  f.avx512bf16 = __builtin_cpu_supports("avx512bf16");
  // RL4QE_HIDE_FEATURES=avx512vnni,avx512bf16 (comma-separated) makes this CPU look as if it
  // lacked them: the tests of the fallbacks and of RL4QE_KERNEL's refusal run on any machine.
  if (const char* hide = std::getenv("RL4QE_HIDE_FEATURES")) {
    const std::string h = std::string(",") + hide + ",";
    auto hidden = [&](const char* n) { return h.find(std::string(",") + n + ",") != std::string::npos; };
    std::vector<std::string> kept;
    for (const std::string& n : f.list)
      if (!hidden(n.c_str())) kept.push_back(n);
    f.list = kept;
    if (hidden("avx2")) f.avx2 = false;
    if (hidden("fma")) f.fma = false;
    if (hidden("f16c")) f.f16c = false;
    if (hidden("avx512f")) f.avx512f = false;
    if (hidden("avx512dq")) f.avx512dq = false;
    if (hidden("avx512bw")) f.avx512bw = false;
    if (hidden("avx512vl")) f.avx512vl = false;
    if (hidden("avx512vnni")) f.avx512vnni = false;
    if (hidden("avx512bf16")) f.avx512bf16 = false;
  }
#endif
  return f;
}

const Features& features() {
  static Features f = detectFeatures();
  return f;
}

// Kernel sets, best first, with what each needs (its translation unit's -m flags in binding.gyp):
// a set is only ever run on a CPU that has all of them, so a forced or chosen set can never hit an
// illegal instruction.
struct KernelSet {
  const char* name;
  std::vector<std::pair<const char*, bool Features::*>> needs;
  const KernelTable* (*table)();
};

const std::vector<KernelSet>& kernelSets() {
  static const std::vector<KernelSet> sets = {
#if defined(__x86_64__) || defined(_M_X64)
      {"avx512vnni",
       {{"avx512f", &Features::avx512f}, {"avx512dq", &Features::avx512dq},
        {"avx512bw", &Features::avx512bw}, {"avx512vl", &Features::avx512vl},
        {"avx512vnni", &Features::avx512vnni}, {"fma", &Features::fma}, {"f16c", &Features::f16c}},
       tableAvx512Vnni},
      {"avx512",
       {{"avx512f", &Features::avx512f}, {"avx512dq", &Features::avx512dq},
        {"avx512bw", &Features::avx512bw}, {"avx512vl", &Features::avx512vl},
        {"fma", &Features::fma}, {"f16c", &Features::f16c}},
       tableAvx512},
      {"avx2", {{"avx2", &Features::avx2}, {"fma", &Features::fma}, {"f16c", &Features::f16c}}, tableAvx2},
#endif
      {"generic", {}, tableGeneric},
  };
  return sets;
}

// The features `s` needs that this CPU lacks, comma-separated ("" when it can run it).
std::string missingFor(const KernelSet& s) {
  std::string miss;
  for (const auto& [name, has] : s.needs)
    if (!(features().*has)) miss += (miss.empty() ? "" : ", ") + std::string(name);
  return miss;
}

const KernelSet* setNamed(const std::string& name) {
  for (const KernelSet& s : kernelSets())
    if (name == s.name) return &s;
  return nullptr;
}

std::string runnableList() {
  std::string r;
  for (const KernelSet& s : kernelSets())
    if (missingFor(s).empty()) r += (r.empty() ? "" : ", ") + std::string(s.name);
  return r;
}

// Returns null when `name` is unknown or this CPU cannot run it; *why says which.
const KernelTable* tableNamed(const std::string& name, std::string* why = nullptr) {
  const KernelSet* s = setNamed(name);
  if (!s) {
    if (why) *why = "kernel set '" + name + "' is unknown (this CPU runs: " + runnableList() + ")";
    return nullptr;
  }
  const std::string miss = missingFor(*s);
  if (!miss.empty()) {
    if (why)
      *why = "kernel set '" + name + "' needs " + miss + ", which this CPU lacks (it runs: " +
             runnableList() + ")";
    return nullptr;
  }
  return s->table();
}

// The best set this CPU runs; *note: one line per better set it falls back from, and why.
const KernelTable* bestTable(std::string* note) {
  for (const KernelSet& s : kernelSets()) {
    const std::string miss = missingFor(s);
    if (miss.empty()) return s.table();
    if (note) *note += (note->empty() ? "" : "; ") + std::string(s.name) + " not used: the CPU lacks " + miss;
  }
  return tableGeneric();
}

const KernelTable* g_table = nullptr;
std::string g_tableNote;   // fallbacks from better kernel sets, for doctor and bench output
std::string g_refused;     // RL4QE_KERNEL asked for a set this CPU cannot run (the loader refuses)

const KernelTable* table() {
  if (!g_table) {
    g_table = bestTable(&g_tableNote);
    const char* env = std::getenv("RL4QE_KERNEL");
    if (env && *env) {
      std::string why;
      const KernelTable* t = tableNamed(env, &why);
      if (t) {
        g_table = t;
        g_tableNote = std::string("forced by RL4QE_KERNEL=") + env;
      } else {
        // Never run a set the CPU lacks; the best one stays in place so that nothing here can
        // fault, and the TS loader refuses to use the addon with this message.
        g_refused = "RL4QE_KERNEL=" + std::string(env) + ": " + why;
      }
    }
  }
  return g_table;
}

// ---- argument helpers -------------------------------------------------------------------------

[[noreturn]] void fail(const Env& env, const std::string& where, const std::string& msg) {
  throw RangeError::New(env, where + ": " + msg);
}

Float32Array f32(const CallbackInfo& info, size_t i, const char* what) {
  const Value v = info[i];
  if (!v.IsTypedArray() || v.As<TypedArray>().TypedArrayType() != napi_float32_array)
    throw TypeError::New(info.Env(), std::string(what) + ": expected a Float32Array");
  return v.As<Float32Array>();
}

float* f32need(const CallbackInfo& info, size_t i, const char* where, const char* what,
               double need) {
  Float32Array a = f32(info, i, what);
  const size_t len = a.ElementLength();
  if ((double)len < need) {
    fail(info.Env(), where,
         std::string(what) + " has " + std::to_string(len) + " elements, the op needs " +
             std::to_string((long long)need) + (len == 0 ? " (was it released?)" : ""));
  }
  return a.Data();
}

int32_t* i32need(const CallbackInfo& info, size_t i, const char* where, const char* what,
                 double need, size_t* lenOut = nullptr) {
  const Value v = info[i];
  if (!v.IsTypedArray() || v.As<TypedArray>().TypedArrayType() != napi_int32_array)
    throw TypeError::New(info.Env(), std::string(where) + ": " + what + ": expected an Int32Array");
  Int32Array a = v.As<Int32Array>();
  if ((double)a.ElementLength() < need)
    fail(info.Env(), where,
         std::string(what) + " has " + std::to_string(a.ElementLength()) +
             " elements, the op needs " + std::to_string((long long)need));
  if (lenOut) *lenOut = a.ElementLength();
  return a.Data();
}

int64_t intArg(const CallbackInfo& info, size_t i, const char* where, const char* what,
               int64_t lo = 0) {
  const Value v = info[i];
  if (!v.IsNumber()) fail(info.Env(), where, std::string(what) + " must be a number");
  const double d = v.As<Number>().DoubleValue();
  if (!(d == std::floor(d)) || d < (double)lo || d > 9.0e15)
    fail(info.Env(), where, std::string(what) + " must be an integer ≥ " + std::to_string(lo) +
                                ", got " + std::to_string(d));
  return (int64_t)d;
}

double numArg(const CallbackInfo& info, size_t i) { return info[i].As<Number>().DoubleValue(); }
bool boolArg(const CallbackInfo& info, size_t i) { return info[i].ToBoolean().Value(); }

std::vector<int64_t> intList(const CallbackInfo& info, size_t i, const char* where,
                             const char* what, bool allowNegative) {
  const Value v = info[i];
  if (!v.IsArray()) fail(info.Env(), where, std::string(what) + " must be an array of integers");
  Array a = v.As<Array>();
  std::vector<int64_t> out(a.Length());
  for (uint32_t k = 0; k < a.Length(); ++k) {
    const Value e = a.Get(k);
    const double d = e.IsNumber() ? e.As<Number>().DoubleValue() : NAN;
    if (!(d == std::floor(d)) || (!allowNegative && d < 0) || std::fabs(d) > 9.0e15)
      fail(info.Env(), where, std::string(what) + "[" + std::to_string(k) + "] is not a valid integer");
    out[k] = (int64_t)d;
  }
  return out;
}

// Lowest and highest element offset a strided walk touches (shape has no zero).
void strideExtent(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides,
                  int64_t off, int64_t& lo, int64_t& hi) {
  lo = hi = off;
  for (size_t d = 0; d < shape.size(); ++d) {
    const int64_t span = (shape[d] - 1) * strides[d];
    if (span > 0) hi += span;
    else lo += span;
  }
}

void checkExtent(const CallbackInfo& info, const char* where, const char* what, size_t len,
                 const std::vector<int64_t>& shape, const std::vector<int64_t>& strides,
                 int64_t off) {
  if (strides.size() != shape.size())
    fail(info.Env(), where, std::string(what) + " strides have " + std::to_string(strides.size()) +
                                " entries, the shape has " + std::to_string(shape.size()));
  for (int64_t s : shape)
    if (s == 0) return;
  int64_t lo, hi;
  strideExtent(shape, strides, off, lo, hi);
  if (lo < 0 || hi >= (int64_t)len)
    fail(info.Env(), where, std::string(what) + " is accessed at offsets [" + std::to_string(lo) +
                                ", " + std::to_string(hi) + "] but has " + std::to_string(len) +
                                " elements" + (len == 0 ? " (was it released?)" : ""));
}

// ---- memory (allocator.h; here only the N-API side: V8 is told of every byte malloc'd or freed) --

void freeBlock(Env env, mem::Block* blk) {
  const int64_t freed = mem::give(blk);
  if (freed) MemoryManagement::AdjustExternalMemory(env, -freed);
}

Value Alloc(const CallbackInfo& info) {
  Env env = info.Env();
  const int64_t len = intArg(info, 0, "native.alloc", "length");
  if (len > (int64_t(1) << 32)) fail(env, "native.alloc", "length " + std::to_string(len) + " is too large for one Float32Array");
  // V8 drops the pointer of an empty external buffer; an empty JS array needs no freeing anyway.
  if (len == 0) return Float32Array::New(env, 0);
  const size_t bytes = mem::blockBytes((size_t)len);
  bool fresh = false;
  mem::Block* blk = mem::take(bytes, &fresh);
  if (!blk) throw Error::New(env, "native.alloc: out of memory allocating " + std::to_string(bytes) + " bytes");
  if (fresh) MemoryManagement::AdjustExternalMemory(env, (int64_t)bytes);
  // alloc(length, zero = true): false skips the zero fill (outputs a kernel overwrites). Fresh
  // mmap'd blocks are already zero.
  const bool zero = info.Length() < 2 || info[1].IsUndefined() || info[1].ToBoolean().Value();
  if (zero && !(fresh && bytes >= mem::kMapMin))
    ops::fill(static_cast<float*>(blk->ptr), (int64_t)(bytes / sizeof(float)), 0.0f);
  ArrayBuffer ab = ArrayBuffer::New(
      env, blk->ptr, (size_t)len * sizeof(float),
      [](Env e, void*, mem::Block* b) {
        if (!b->freed) freeBlock(e, b);
        delete b;
      },
      blk);
  return Float32Array::New(env, (size_t)len, ab, 0);
}

// Frees memory from Alloc now and detaches the buffer; anything else (JS-owned memory, an
// already released buffer) is left to the garbage collector.
Value Release(const CallbackInfo& info) {
  Env env = info.Env();
  if (!info[0].IsTypedArray()) throw TypeError::New(env, "native.release: expected a typed array");
  ArrayBuffer ab = info[0].As<TypedArray>().ArrayBuffer();
  if (ab.IsDetached()) return Boolean::New(env, false);
  mem::Block* blk = mem::find(ab.Data());
  if (!blk) return Boolean::New(env, false);
  ab.Detach();
  freeBlock(env, blk);
  return Boolean::New(env, true);
}

Value IsNative(const CallbackInfo& info) {
  if (!info[0].IsTypedArray()) return Boolean::New(info.Env(), false);
  ArrayBuffer ab = info[0].As<TypedArray>().ArrayBuffer();
  if (ab.IsDetached()) return Boolean::New(info.Env(), false);
  return Boolean::New(info.Env(), mem::find(ab.Data()) != nullptr);
}

Value Alignment(const CallbackInfo& info) {
  if (!info[0].IsTypedArray()) throw TypeError::New(info.Env(), "native.alignment: expected a typed array");
  TypedArray t = info[0].As<TypedArray>();
  const uintptr_t addr = reinterpret_cast<uintptr_t>(static_cast<char*>(t.ArrayBuffer().Data()) + t.ByteOffset());
  return Number::New(info.Env(), (double)(addr % 64));
}

Value LiveBytes(const CallbackInfo& info) { return Number::New(info.Env(), (double)mem::liveBytes()); }

// Frees every pooled block (released memory kept for reuse) and returns the bytes freed. Called
// after a model load: the placeholders a model is created with are replaced by the loaded
// weights, and without a trim up to RL4QE_POOL_MB of them would stay resident for nothing.
Value TrimPool(const CallbackInfo& info) {
  const int64_t freed = mem::trim();
  if (freed) MemoryManagement::AdjustExternalMemory(info.Env(), -freed);
  return Number::New(info.Env(), (double)freed);
}

// setPoolCap(mb) → the previous cap in MiB. Lowering it frees pooled blocks down to the new cap.
Value SetPoolCap(const CallbackInfo& info) {
  const int64_t mb = intArg(info, 0, "native.setPoolCap", "mb");
  if (mb < 0) fail(info.Env(), "native.setPoolCap", "mb must be >= 0");
  size_t prev = 0;
  const int64_t freed = mem::setCap((size_t)mb << 20, &prev);
  if (freed) MemoryManagement::AdjustExternalMemory(info.Env(), -freed);
  return Number::New(info.Env(), (double)(prev >> 20));
}

// ---- info -------------------------------------------------------------------------------------

void* openblasHandle(std::string* pathOut = nullptr);
std::string bf16Missing();

Value Info(const CallbackInfo& info) {
  Env env = info.Env();
  Object o = Object::New(env);
  const KernelTable* t = table();
  o.Set("kernel", t->name);
  o.Set("mr", t->mr);
  o.Set("nr", t->nr);
  o.Set("threads", numThreads());
  o.Set("note", g_tableNote);
  o.Set("refused", g_refused);
  o.Set("int8MaxM", t->int8MaxM);
  o.Set("units", t->units);
  {
    const std::string miss = bf16Missing();
    o.Set("bf16", miss.empty() ? std::string("AVX512-BF16 vdpbf16ps (fp32 accumulation); AMX not built")
                               : "none: the CPU lacks " + miss);
    o.Set("bf16Available", miss.empty());
  }
  Array fs = Array::New(env);
  for (size_t i = 0; i < features().list.size(); ++i) fs.Set((uint32_t)i, features().list[i]);
  o.Set("features", fs);
  Array ks = Array::New(env);
  uint32_t n = 0;
  for (const KernelSet& s : kernelSets())
    if (tableNamed(s.name)) ks.Set(n++, s.name);
  o.Set("kernels", ks);
  std::string path;
  o.Set("openblas", openblasHandle(&path) ? Value(String::New(env, path)) : env.Null());
  return o;
}

Value SetThreads(const CallbackInfo& info) {
  setNumThreads((int)intArg(info, 0, "native.setThreads", "threads"));
  return Number::New(info.Env(), numThreads());
}

Value SetKernel(const CallbackInfo& info) {
  const std::string name = info[0].ToString().Utf8Value();
  std::string why;
  table();  // the startup choice first, so it cannot later overwrite this one
  const KernelTable* t = tableNamed(name, &why);
  if (!t) fail(info.Env(), "native.setKernel", why);
  g_table = t;
  g_tableNote = "set by setKernel('" + name + "')";
  return String::New(info.Env(), t->name);
}

// ---- bf16 GEMM (gemm_bf16.cc; AVX512-BF16 only) -----------------------------------------------

// Why this CPU runs no bf16 GEMM ("" when it does).
std::string bf16Missing() {
#if defined(__x86_64__) || defined(_M_X64)
  const Features& f = features();
  std::string miss;
  for (const auto& [name, has] : std::initializer_list<std::pair<const char*, bool>>{
           {"avx512f", f.avx512f}, {"avx512bw", f.avx512bw}, {"avx512vl", f.avx512vl},
           {"avx512dq", f.avx512dq}, {"avx512bf16", f.avx512bf16}, {"fma", f.fma}, {"f16c", f.f16c}})
    if (!has) miss += (miss.empty() ? "" : ", ") + std::string(name);
  return miss;
#else
  return "an x86-64 CPU with avx512bf16";
#endif
}

void needBf16(const CallbackInfo& info, const char* where) {
  const std::string miss = bf16Missing();
  if (!miss.empty())
    fail(info.Env(), where, "the bf16 GEMM needs " + miss + ", which this CPU lacks (use --compute fp32)");
}

#if defined(__x86_64__) || defined(_M_X64)
// packBf16(b, k, n, transB): op(B) (k × n) rounded to bf16 and packed for matmulBf16 (Uint32Array).
Value PackBf16(const CallbackInfo& info) {
  const char* W = "native.packBf16";
  needBf16(info, W);
  const int64_t k = intArg(info, 1, W, "k"), n = intArg(info, 2, W, "n");
  const bool transB = boolArg(info, 3);
  const float* b = f32need(info, 0, W, "b", (double)k * n);
  const int64_t words = bf16::packedBf16Words(k, n);
  Uint32Array out = Uint32Array::New(info.Env(), (size_t)std::max<int64_t>(words, 1));
  bf16::packB(b, transB ? k : n, transB, k, n, out.Data());
  return out;
}

// Argument i: a Uint32Array from packBf16 for a k × n op(B), long enough for that shape.
Uint32Array packedArg(const CallbackInfo& info, size_t i, const char* W, int64_t k, int64_t n) {
  const Value pv = info[i];
  if (!pv.IsTypedArray() || pv.As<TypedArray>().TypedArrayType() != napi_uint32_array)
    throw TypeError::New(info.Env(), std::string(W) + ": packed: expected a Uint32Array from packBf16");
  Uint32Array packed = pv.As<Uint32Array>();
  if ((int64_t)packed.ElementLength() < bf16::packedBf16Words(k, n))
    fail(info.Env(), W, "packed has " + std::to_string(packed.ElementLength()) + " words, a " +
                            std::to_string(k) + " × " + std::to_string(n) + " B packs to " +
                            std::to_string(bf16::packedBf16Words(k, n)) + " (packed for another shape?)");
  return packed;
}

// packBf16T(packed, k, n): the packing of op(B)ᵀ (n × k) from packBf16(_, k, n, _)'s packing of
// op(B), the same bf16 values (the input-gradient layout of a frozen weight, gemm_bf16.cc).
Value PackBf16T(const CallbackInfo& info) {
  const char* W = "native.packBf16T";
  needBf16(info, W);
  const int64_t k = intArg(info, 1, W, "k"), n = intArg(info, 2, W, "n");
  Uint32Array packed = packedArg(info, 0, W, k, n);
  Uint32Array out = Uint32Array::New(info.Env(), (size_t)std::max<int64_t>(bf16::packedBf16Words(n, k), 1));
  bf16::packTransposed(packed.Data(), k, n, out.Data());
  return out;
}

// matmulBf16(a, packed, out, m, k, n, transA, alpha, accumulate): out [m, n] = alpha · op(A) · B
// (+ out), B from packBf16(_, k, n, _), A rounded to bf16, fp32 sums.
Value MatmulBf16(const CallbackInfo& info) {
  const char* W = "native.matmulBf16";
  needBf16(info, W);
  const int64_t m = intArg(info, 3, W, "m"), k = intArg(info, 4, W, "k"), n = intArg(info, 5, W, "n");
  const bool transA = boolArg(info, 6);
  const float* a = f32need(info, 0, W, "a", (double)m * k);
  Uint32Array packed = packedArg(info, 1, W, k, n);
  float* out = f32need(info, 2, W, "out", (double)m * n);
  bf16::gemmPacked(m, n, k, a, transA ? m : k, transA, packed.Data(), out, n, (float)numArg(info, 7),
                   boolArg(info, 8));
  return info.Env().Undefined();
}

Value PeakBf16(const CallbackInfo& info) {
  needBf16(info, "native.peakBf16");
  const double seconds = info.Length() > 0 && info[0].IsNumber() ? numArg(info, 0) : 0.2;
  const int threads = info.Length() > 1 && info[1].IsNumber() ? (int)numArg(info, 1) : numThreads();
  return Number::New(info.Env(), bf16::peak(seconds, threads));
}
#endif

Value Peak(const CallbackInfo& info) {
  const double seconds = info.Length() > 0 && info[0].IsNumber() ? numArg(info, 0) : 0.2;
  const int threads = info.Length() > 1 && info[1].IsNumber() ? (int)numArg(info, 1) : numThreads();
  return Number::New(info.Env(), table()->peak(seconds, threads));
}

// ---- OpenBLAS, found at run time (never a build or link requirement) --------------------------

using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int,
                         float, float*, int);
using SetThreadsFn = void (*)(int);
std::string g_blasPath;
bool g_blasTried = false;
void* g_blas = nullptr;

void* openblasHandle(std::string* pathOut) {
  if (!g_blasTried) {
    g_blasTried = true;
    for (const char* name : {"libopenblas.so.0", "libopenblas.so", "libopenblasp.so.0",
                             "libopenblas.dylib"}) {
      void* h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (h && dlsym(h, "cblas_sgemm")) {
        g_blas = h;
        g_blasPath = name;
        break;
      }
      if (h) dlclose(h);
    }
  }
  if (pathOut) *pathOut = g_blasPath;
  return g_blas;
}

// openblasSgemm(a, b, c, m, k, n, transA, transB, threads): C = op(A)·op(B), row-major.
Value OpenblasSgemm(const CallbackInfo& info) {
  Env env = info.Env();
  void* h = openblasHandle();
  if (!h) return Boolean::New(env, false);
  const char* W = "native.openblasSgemm";
  const int64_t m = intArg(info, 3, W, "m"), k = intArg(info, 4, W, "k"), n = intArg(info, 5, W, "n");
  const bool ta = boolArg(info, 6), tb = boolArg(info, 7);
  const float* a = f32need(info, 0, W, "a", (double)m * k);
  const float* b = f32need(info, 1, W, "b", (double)k * n);
  float* c = f32need(info, 2, W, "c", (double)m * n);
  auto sgemm = reinterpret_cast<SgemmFn>(dlsym(h, "cblas_sgemm"));
  auto setThreads = reinterpret_cast<SetThreadsFn>(dlsym(h, "openblas_set_num_threads"));
  if (setThreads && info.Length() > 8 && info[8].IsNumber()) setThreads((int)numArg(info, 8));
  // CBLAS: RowMajor 101, NoTrans 111, Trans 112.
  sgemm(101, ta ? 112 : 111, tb ? 112 : 111, (int)m, (int)n, (int)k, 1.0f, a, ta ? (int)m : (int)k,
        b, tb ? (int)k : (int)n, 0.0f, c, (int)n);
  return Boolean::New(env, true);
}

// ---- kernels ----------------------------------------------------------------------------------

// matmul(a, b, out, batch, m, k, n, transA, transB, strideA, strideB, strideOut, alpha, accumulate)
Value Matmul(const CallbackInfo& info) {
  const char* W = "native.matmul";
  MatmulArgs p{};
  p.batch = intArg(info, 3, W, "batch");
  p.m = intArg(info, 4, W, "m");
  p.k = intArg(info, 5, W, "k");
  p.n = intArg(info, 6, W, "n");
  p.transA = boolArg(info, 7);
  p.transB = boolArg(info, 8);
  p.strideA = intArg(info, 9, W, "strideA");
  p.strideB = intArg(info, 10, W, "strideB");
  p.strideOut = intArg(info, 11, W, "strideOut");
  p.alpha = (float)numArg(info, 12);
  p.accumulate = boolArg(info, 13);
  const double nb = p.batch > 0 ? (double)(p.batch - 1) : 0.0;
  const bool any = p.batch > 0;
  p.a = f32need(info, 0, W, "a", any && p.m * p.k > 0 ? nb * p.strideA + (double)p.m * p.k : 0);
  p.b = f32need(info, 1, W, "b", any && p.k * p.n > 0 ? nb * p.strideB + (double)p.k * p.n : 0);
  p.c = f32need(info, 2, W, "out", any && p.m * p.n > 0 ? nb * p.strideOut + (double)p.m * p.n : 0);
  if (p.batch == 0 || p.m == 0 || p.n == 0) return info.Env().Undefined();
  table()->matmul(p);
  return info.Env().Undefined();
}

// ---- quantised frozen weights -----------------------------------------------------------------

// Checks a QuantWeight given as (data: Uint8Array, type, rows, cols) at info[i..i+3]: a known
// type, cols a whole number of blocks, data long enough for rows · cols / blockSize blocks.
QuantArgs quantArg(const CallbackInfo& info, size_t i, const char* W) {
  const Value v = info[i];
  if (!v.IsTypedArray() || v.As<TypedArray>().TypedArrayType() != napi_uint8_array)
    throw TypeError::New(info.Env(), std::string(W) + ": w.data: expected a Uint8Array");
  Uint8Array data = v.As<Uint8Array>();
  QuantArgs w{};
  w.type = (int)intArg(info, i + 1, W, "w.type");
  w.rows = intArg(info, i + 2, W, "w.rows");
  w.cols = intArg(info, i + 3, W, "w.cols");
  int bs = 0, ts = 0;
  if (!quantLayout(w.type, bs, ts))
    fail(info.Env(), W, "ggml type " + std::to_string(w.type) + " is not a supported block format");
  if (w.cols % bs != 0)
    fail(info.Env(), W, std::to_string(w.cols) + " columns is not a multiple of the block size " +
                            std::to_string(bs) + " of ggml type " + std::to_string(w.type));
  const double need = (double)w.rows * (double)(w.cols / bs) * ts;
  if ((double)data.ByteLength() < need)
    fail(info.Env(), W,
         "w.data has " + std::to_string(data.ByteLength()) + " bytes, " + std::to_string(w.rows) +
             " rows of " + std::to_string(w.cols) + " values of ggml type " +
             std::to_string(w.type) + " need " + std::to_string((long long)need) +
             (data.ByteLength() == 0 ? " (was it released?)" : ""));
  w.data = data.Data();
  return w;
}

Value Qsupports(const CallbackInfo& info) {
  int bs = 0, ts = 0;
  const bool ok = info[0].IsNumber() && quantLayout((int)info[0].As<Number>().Int32Value(), bs, ts);
  return Boolean::New(info.Env(), ok);
}

// qmatmul(x, data, type, rows, cols, out, m, accumulate, int8): out [m, rows] = x [m, cols] · Wᵀ
// (+out); int8: may run on int8 activations (qmatmulInt8) where the kernel set has them.
Value Qmatmul(const CallbackInfo& info) {
  const char* W = "native.qmatmul";
  const QuantArgs w = quantArg(info, 1, W);
  const int64_t m = intArg(info, 6, W, "m");
  const float* x = f32need(info, 0, W, "x", (double)m * w.cols);
  float* out = f32need(info, 5, W, "out", (double)m * w.rows);
  // Optional 9th argument: the caller allows int8 activations (decoding steps).
  const bool int8 = info.Length() > 8 && info[8].ToBoolean().Value();
  const KernelTable* t = table();
  if (int8 && t->qmatmulInt8)
    t->qmatmulInt8(x, w, out, m, boolArg(info, 7));
  else
    t->qmatmul(x, w, out, m, boolArg(info, 7));
  return info.Env().Undefined();
}

// qmatmulT(g, data, type, rows, cols, out, m, accumulate): out [m, cols] = g [m, rows] · W (+out)
Value QmatmulT(const CallbackInfo& info) {
  const char* W = "native.qmatmulT";
  const QuantArgs w = quantArg(info, 1, W);
  const int64_t m = intArg(info, 6, W, "m");
  const float* g = f32need(info, 0, W, "g", (double)m * w.rows);
  float* out = f32need(info, 5, W, "out", (double)m * w.cols);
  table()->qmatmulT(g, w, out, m, boolArg(info, 7));
  return info.Env().Undefined();
}

// qembedding(data, type, rows, cols, ids, out): out[i, :] = W[ids[i], :]
Value Qembedding(const CallbackInfo& info) {
  const char* W = "native.qembedding";
  const QuantArgs w = quantArg(info, 0, W);
  size_t n = 0;
  const int32_t* ids = i32need(info, 4, W, "ids", 0, &n);
  for (size_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= w.rows)
      fail(info.Env(), W, "ids[" + std::to_string(i) + "] = " + std::to_string(ids[i]) +
                              " is outside the " + std::to_string(w.rows) + " rows");
  float* out = f32need(info, 5, W, "out", (double)n * w.cols);
  table()->qembedding(w, ids, (int64_t)n, out);
  return info.Env().Undefined();
}

// copyStrided(src, srcOffset, srcStrides, dst, dstOffset, dstStrides, shape)
Value CopyStrided(const CallbackInfo& info) {
  const char* W = "native.copyStrided";
  Float32Array src = f32(info, 0, "src");
  Float32Array dst = f32(info, 3, "dst");
  const int64_t so = intArg(info, 1, W, "srcOffset"), dOff = intArg(info, 4, W, "dstOffset");
  const auto ss = intList(info, 2, W, "srcStrides", true);
  const auto ds = intList(info, 5, W, "dstStrides", true);
  const auto shape = intList(info, 6, W, "shape", false);
  checkExtent(info, W, "src", src.ElementLength(), shape, ss, so);
  checkExtent(info, W, "dst", dst.ElementLength(), shape, ds, dOff);
  ops::copyStrided(src.Data(), so, ss.data(), dst.Data(), dOff, ds.data(), shape.data(), (int)shape.size());
  return info.Env().Undefined();
}

Value Fill(const CallbackInfo& info) {
  Float32Array out = f32(info, 0, "out");
  ops::fill(out.Data(), (int64_t)out.ElementLength(), (float)numArg(info, 1));
  return info.Env().Undefined();
}

// binary(op, a, aStrides, b, bStrides, out, outShape)
Value Binary(const CallbackInfo& info) {
  const char* W = "native.binary";
  const int op = (int)intArg(info, 0, W, "op");
  if (op > ops::B_GT) fail(info.Env(), W, "unknown op code");
  Float32Array a = f32(info, 1, "a"), b = f32(info, 3, "b");
  const auto as = intList(info, 2, W, "aStrides", false);
  const auto bs = intList(info, 4, W, "bStrides", false);
  const auto shape = intList(info, 6, W, "outShape", false);
  double total = 1;
  for (int64_t s : shape) total *= (double)s;
  float* out = f32need(info, 5, W, "out", total);
  checkExtent(info, W, "a", a.ElementLength(), shape, as, 0);
  checkExtent(info, W, "b", b.ElementLength(), shape, bs, 0);
  ops::binary(op, a.Data(), as.data(), b.Data(), bs.data(), out, shape.data(), (int)shape.size());
  return info.Env().Undefined();
}

Value Unary(const CallbackInfo& info) {
  const char* W = "native.unary";
  const int op = (int)intArg(info, 0, W, "op");
  if (op > ops::U_RECIP) fail(info.Env(), W, "unknown op code");
  Float32Array x = f32(info, 1, "x");
  const int64_t n = (int64_t)x.ElementLength();
  float* out = f32need(info, 2, W, "out", (double)n);
  ops::unary(op, x.Data(), out, n);
  return info.Env().Undefined();
}

// unaryBackward(op, x, y, gy, gx, accumulate): x or y may be null when the rule does not need it.
Value UnaryBackward(const CallbackInfo& info) {
  const char* W = "native.unaryBackward";
  const int op = (int)intArg(info, 0, W, "op");
  if (op > ops::U_RECIP) fail(info.Env(), W, "unknown op code");
  Float32Array gy = f32(info, 3, "gy");
  const int64_t n = (int64_t)gy.ElementLength();
  float* gx = f32need(info, 4, W, "gx", (double)n);
  const float* x = info[1].IsNull() || info[1].IsUndefined() ? nullptr : f32need(info, 1, W, "x", (double)n);
  const float* y = info[2].IsNull() || info[2].IsUndefined() ? nullptr : f32need(info, 2, W, "y", (double)n);
  const bool needX = op == ops::U_LOG || op == ops::U_SILU || op == ops::U_RELU || op == ops::U_ABS || op == ops::U_SQUARE;
  const bool needY = op == ops::U_EXP || op == ops::U_SQRT || op == ops::U_RSQRT || op == ops::U_SIGMOID || op == ops::U_TANH || op == ops::U_RECIP;
  if ((needX && !x) || (needY && !y)) fail(info.Env(), W, "this op's backward needs its input x and/or output y");
  ops::unaryBackward(op, x, y, gy.Data(), gx, n, boolArg(info, 5));
  return info.Env().Undefined();
}

Value Affine(const CallbackInfo& info) {
  Float32Array x = f32(info, 0, "x");
  const int64_t n = (int64_t)x.ElementLength();
  float* out = f32need(info, 3, "native.affine", "out", (double)n);
  ops::affine(x.Data(), (float)numArg(info, 1), (float)numArg(info, 2), out, n);
  return info.Env().Undefined();
}

// reduce(op, x, outer, axis, inner, out)
Value Reduce(const CallbackInfo& info) {
  const char* W = "native.reduce";
  const int op = (int)intArg(info, 0, W, "op");
  if (op > ops::R_MAX) fail(info.Env(), W, "unknown op code");
  const int64_t outer = intArg(info, 2, W, "outer"), axis = intArg(info, 3, W, "axis"),
                inner = intArg(info, 4, W, "inner");
  const float* x = f32need(info, 1, W, "x", (double)outer * axis * inner);
  float* out = f32need(info, 5, W, "out", (double)outer * inner);
  if (axis == 0) {
    ops::fill(out, outer * inner, op == ops::R_SUM ? 0.0f : -INFINITY);
    return info.Env().Undefined();
  }
  ops::reduce(op, x, outer, axis, inner, out);
  return info.Env().Undefined();
}

// argmax(x, outer, axis, inner, out: Int32Array)
Value Argmax(const CallbackInfo& info) {
  const char* W = "native.argmax";
  const int64_t outer = intArg(info, 1, W, "outer"), axis = intArg(info, 2, W, "axis"),
                inner = intArg(info, 3, W, "inner");
  const float* x = f32need(info, 0, W, "x", (double)outer * axis * inner);
  int32_t* out = i32need(info, 4, W, "out", (double)outer * inner);
  ops::argmax(x, outer, axis, inner, out);
  return info.Env().Undefined();
}

// softmax(x, rows, cols, out, log)
Value Softmax(const CallbackInfo& info) {
  const char* W = "native.softmax";
  const int64_t rows = intArg(info, 1, W, "rows"), cols = intArg(info, 2, W, "cols");
  const float* x = f32need(info, 0, W, "x", (double)rows * cols);
  float* out = f32need(info, 3, W, "out", (double)rows * cols);
  ops::softmax(x, rows, cols, out, boolArg(info, 4));
  return info.Env().Undefined();
}

// softmaxBackward(y, gy, rows, cols, gx, log)
Value SoftmaxBackward(const CallbackInfo& info) {
  const char* W = "native.softmaxBackward";
  const int64_t rows = intArg(info, 2, W, "rows"), cols = intArg(info, 3, W, "cols");
  const double n = (double)rows * cols;
  const float* y = f32need(info, 0, W, "y", n);
  const float* gy = f32need(info, 1, W, "gy", n);
  float* gx = f32need(info, 4, W, "gx", n);
  ops::softmaxBackward(y, gy, rows, cols, gx, boolArg(info, 5));
  return info.Env().Undefined();
}

Value Logsumexp(const CallbackInfo& info) {
  const char* W = "native.logsumexp";
  const int64_t rows = intArg(info, 1, W, "rows"), cols = intArg(info, 2, W, "cols");
  const float* x = f32need(info, 0, W, "x", (double)rows * cols);
  float* out = f32need(info, 3, W, "out", (double)rows);
  ops::logsumexp(x, rows, cols, out);
  return info.Env().Undefined();
}

// rmsnorm(x, w, rows, cols, eps, out, rstd)
Value Rmsnorm(const CallbackInfo& info) {
  const char* W = "native.rmsnorm";
  const int64_t rows = intArg(info, 2, W, "rows"), cols = intArg(info, 3, W, "cols");
  const float* x = f32need(info, 0, W, "x", (double)rows * cols);
  const float* w = f32need(info, 1, W, "w", (double)cols);
  float* out = f32need(info, 5, W, "out", (double)rows * cols);
  float* rstd = f32need(info, 6, W, "rstd", (double)rows);
  ops::rmsnorm(x, w, rows, cols, (float)numArg(info, 4), out, rstd);
  return info.Env().Undefined();
}

// rmsnormBackward(x, w, rstd, gy, rows, cols, gx, gw | null)
Value RmsnormBackward(const CallbackInfo& info) {
  const char* W = "native.rmsnormBackward";
  const int64_t rows = intArg(info, 4, W, "rows"), cols = intArg(info, 5, W, "cols");
  const double n = (double)rows * cols;
  const float* x = f32need(info, 0, W, "x", n);
  const float* w = f32need(info, 1, W, "w", (double)cols);
  const float* rstd = f32need(info, 2, W, "rstd", (double)rows);
  const float* gy = f32need(info, 3, W, "gy", n);
  float* gx = f32need(info, 6, W, "gx", n);
  float* gw = info[7].IsNull() || info[7].IsUndefined() ? nullptr : f32need(info, 7, W, "gw", (double)cols);
  ops::rmsnormBackward(x, w, rstd, gy, rows, cols, gx, gw);
  return info.Env().Undefined();
}

// rope(x, out, batch, seq, heads, headDim, positions, cos, sin, inverse)
Value Rope(const CallbackInfo& info) {
  const char* W = "native.rope";
  const int64_t batch = intArg(info, 2, W, "batch"), seq = intArg(info, 3, W, "seq"),
                heads = intArg(info, 4, W, "heads"), D = intArg(info, 5, W, "headDim");
  if (D % 2) fail(info.Env(), W, "headDim must be even, got " + std::to_string(D));
  const double n = (double)batch * seq * heads * D;
  const float* x = f32need(info, 0, W, "x", n);
  float* out = f32need(info, 1, W, "out", n);
  const int32_t* pos = i32need(info, 6, W, "positions", (double)batch * seq);
  Float32Array c = f32(info, 7, "cos"), s = f32(info, 8, "sin");
  const int64_t half = D / 2;
  const int64_t maxPos = half > 0 ? (int64_t)std::min(c.ElementLength(), s.ElementLength()) / half : 0;
  for (int64_t i = 0; i < batch * seq; ++i)
    if (pos[i] < 0 || pos[i] >= maxPos)
      fail(info.Env(), W, "position " + std::to_string(pos[i]) + " at index " + std::to_string(i) +
                              " is outside the rope table (" + std::to_string(maxPos) + " positions)");
  if (half > 0) ops::rope(x, out, batch, seq, heads, D, pos, c.Data(), s.Data(), boolArg(info, 9));
  return info.Env().Undefined();
}

AttnArgs attnArgs(const CallbackInfo& info, size_t at, const char* W) {
  // at: batch, seqQ, seqK, heads, kvHeads, headDim, scale, causal, keyStart | null
  AttnArgs p{};
  p.batch = intArg(info, at, W, "batch");
  p.seqQ = intArg(info, at + 1, W, "seqQ");
  p.seqK = intArg(info, at + 2, W, "seqK");
  p.heads = intArg(info, at + 3, W, "heads", 1);
  p.kvHeads = intArg(info, at + 4, W, "kvHeads", 1);
  p.headDim = intArg(info, at + 5, W, "headDim");
  p.scale = (float)numArg(info, at + 6);
  p.causal = boolArg(info, at + 7);
  if (p.heads % p.kvHeads)
    fail(info.Env(), W, "heads (" + std::to_string(p.heads) + ") must be a multiple of kvHeads (" + std::to_string(p.kvHeads) + ")");
  const Value ks = info[at + 8];
  p.keyStart = ks.IsNull() || ks.IsUndefined() ? nullptr : i32need(info, at + 8, W, "keyStart", (double)p.batch);
  const int64_t dense = p.seqK * p.kvHeads * p.headDim;
  const Value st = info[at + 9];
  p.kvStride = st.IsNull() || st.IsUndefined() ? dense : intArg(info, at + 9, W, "kvStride");
  const Value rs = info[at + 10], hs = info[at + 11];
  p.kvRowStride = rs.IsNull() || rs.IsUndefined() ? p.kvHeads * p.headDim : intArg(info, at + 10, W, "kvRowStride");
  p.kvHeadStride = hs.IsNull() || hs.IsUndefined() ? p.headDim : intArg(info, at + 11, W, "kvHeadStride");
  // Every key of every head of one batch entry must lie inside its kvStride elements.
  const int64_t extent = p.seqK == 0 ? 0 : (p.kvHeads - 1) * p.kvHeadStride + (p.seqK - 1) * p.kvRowStride + p.headDim;
  if (p.kvRowStride < p.headDim || p.kvHeadStride < p.headDim)
    fail(info.Env(), W, "kvRowStride and kvHeadStride must be at least headDim (" + std::to_string(p.headDim) + ")");
  if (p.kvStride < extent)
    fail(info.Env(), W, "kvStride (" + std::to_string(p.kvStride) + ") must cover seqK keys of every KV head (" + std::to_string(extent) + " elements)");
  return p;
}

// attention(q, k, v, out, lse, batch, seqQ, seqK, heads, kvHeads, headDim, scale, causal,
//           keyStart | null, kvStride | null, kvRowStride | null, kvHeadStride | null):
// k and v may be strided views (a KV cache): null strides mean contiguous [batch, seqK, kvHeads, D].
Value Attention(const CallbackInfo& info) {
  const char* W = "native.attention";
  const AttnArgs p = attnArgs(info, 5, W);
  const double nq = (double)p.batch * p.seqQ * p.heads * p.headDim;
  const double nk = p.batch == 0 || p.seqK == 0
                       ? 0.0
                       : (double)(p.batch - 1) * p.kvStride + (double)(p.kvHeads - 1) * p.kvHeadStride +
                             (double)(p.seqK - 1) * p.kvRowStride + (double)p.headDim;
  const float* q = f32need(info, 0, W, "q", nq);
  const float* k = f32need(info, 1, W, "k", nk);
  const float* v = f32need(info, 2, W, "v", nk);
  float* out = f32need(info, 3, W, "out", nq);
  float* lse = f32need(info, 4, W, "lse", (double)p.batch * p.heads * p.seqQ);
  if (p.batch * p.seqQ * p.heads == 0) return info.Env().Undefined();
  table()->attention(q, k, v, out, lse, p);
  return info.Env().Undefined();
}

// attentionBackward(q, k, v, out, lse, gOut, gq, gk, gv, batch, seqQ, seqK, heads, kvHeads,
//                   headDim, scale, causal, keyStart | null, kvStride, kvRowStride, kvHeadStride):
// the same tail as attention, but k and v must be contiguous (the strides null or their defaults).
Value AttentionBackward(const CallbackInfo& info) {
  const char* W = "native.attentionBackward";
  const AttnArgs p = attnArgs(info, 9, W);
  if (p.kvStride != p.seqK * p.kvHeads * p.headDim || p.kvRowStride != p.kvHeads * p.headDim ||
      p.kvHeadStride != p.headDim)
    fail(info.Env(), W, "the backward needs contiguous k and v (kvStride = seqK·kvHeads·headDim, default row and head strides)");
  const double nq = (double)p.batch * p.seqQ * p.heads * p.headDim;
  const double nk = (double)p.batch * p.seqK * p.kvHeads * p.headDim;
  const float* q = f32need(info, 0, W, "q", nq);
  const float* k = f32need(info, 1, W, "k", nk);
  const float* v = f32need(info, 2, W, "v", nk);
  const float* out = f32need(info, 3, W, "out", nq);
  const float* lse = f32need(info, 4, W, "lse", (double)p.batch * p.heads * p.seqQ);
  const float* gOut = f32need(info, 5, W, "gOut", nq);
  float* gq = f32need(info, 6, W, "gq", nq);
  float* gk = f32need(info, 7, W, "gk", nk);
  float* gv = f32need(info, 8, W, "gv", nk);
  table()->attentionBackward(q, k, v, out, lse, gOut, gq, gk, gv, p);
  return info.Env().Undefined();
}

// embedding(table, ids, dim, out)
Value Embedding(const CallbackInfo& info) {
  const char* W = "native.embedding";
  const int64_t dim = intArg(info, 2, W, "dim", 1);
  Float32Array t = f32(info, 0, "table");
  size_t n = 0;
  const int32_t* ids = i32need(info, 1, W, "ids", 0, &n);
  float* out = f32need(info, 3, W, "out", (double)n * dim);
  const int64_t rows = (int64_t)t.ElementLength() / dim;
  for (size_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= rows)
      fail(info.Env(), W, "id " + std::to_string(ids[i]) + " at index " + std::to_string(i) +
                              " is outside the table (" + std::to_string(rows) + " rows)");
  ops::embedding(t.Data(), ids, (int64_t)n, dim, out);
  return info.Env().Undefined();
}

// embeddingBackward(gOut, ids, dim, gTable)
Value EmbeddingBackward(const CallbackInfo& info) {
  const char* W = "native.embeddingBackward";
  const int64_t dim = intArg(info, 2, W, "dim", 1);
  size_t n = 0;
  const int32_t* ids = i32need(info, 1, W, "ids", 0, &n);
  const float* g = f32need(info, 0, W, "gOut", (double)n * dim);
  Float32Array t = f32(info, 3, "gTable");
  const int64_t rows = (int64_t)t.ElementLength() / dim;
  for (size_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= rows)
      fail(info.Env(), W, "id " + std::to_string(ids[i]) + " at index " + std::to_string(i) +
                              " is outside the table (" + std::to_string(rows) + " rows)");
  ops::embeddingBackward(g, ids, (int64_t)n, dim, t.Data());
  return info.Env().Undefined();
}

// adamw(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step)
Value Adamw(const CallbackInfo& info) {
  const char* W = "native.adamw";
  Float32Array param = f32(info, 0, "param");
  const double n = (double)param.ElementLength();
  const float* g = f32need(info, 1, W, "grad", n);
  float* m = f32need(info, 2, W, "m", n);
  float* v = f32need(info, 3, W, "v", n);
  const int64_t step = intArg(info, 9, W, "step", 1);
  ops::adamw(param.Data(), g, m, v, (int64_t)n, (float)numArg(info, 4), (float)numArg(info, 5),
             (float)numArg(info, 6), (float)numArg(info, 7), (float)numArg(info, 8), step);
  return info.Env().Undefined();
}

Object Init(Env env, Object exports) {
#if defined(__GLIBC__)
  // Tensors come and go in sizes that grow step by step (KV cache views, prefill chunks): with
  // glibc's dynamic mmap threshold, freed blocks of one step did not fit the next step's and the
  // heap grew without bound (8 × 512-token prefill: 5.9 GB RSS for 0.7 GB live; 64 KiB still
  // let 16–64 KiB decode-step blocks fragment it). A fixed threshold of 16 KiB maps every
  // tensor-sized block on its own and unmaps it on release (or parks it in the cache below). RL4QE_MMAP_THRESHOLD overrides it (bytes; 0 keeps glibc's).
  {
    const char* e = std::getenv("RL4QE_MMAP_THRESHOLD");
    const long t = e ? std::atol(e) : 16 * 1024;
    if (t > 0) mallopt(M_MMAP_THRESHOLD, (int)t);
  }
#endif
  const std::pair<const char*, Value (*)(const CallbackInfo&)> fns[] = {
      {"alloc", Alloc},
      {"release", Release},
      {"isNative", IsNative},
      {"liveBytes", LiveBytes},
      {"alignment", Alignment},
      {"info", Info},
      {"setThreads", SetThreads},
      {"setKernel", SetKernel},
      {"peak", Peak},
#if defined(__x86_64__) || defined(_M_X64)
      {"packBf16", PackBf16},
      {"packBf16T", PackBf16T},
      {"matmulBf16", MatmulBf16},
      {"peakBf16", PeakBf16},
#endif
      {"openblasSgemm", OpenblasSgemm},
      {"matmul", Matmul},
      {"copyStrided", CopyStrided},
      {"fill", Fill},
      {"binary", Binary},
      {"unary", Unary},
      {"unaryBackward", UnaryBackward},
      {"affine", Affine},
      {"reduce", Reduce},
      {"argmax", Argmax},
      {"softmax", Softmax},
      {"softmaxBackward", SoftmaxBackward},
      {"logsumexp", Logsumexp},
      {"rmsnorm", Rmsnorm},
      {"rmsnormBackward", RmsnormBackward},
      {"rope", Rope},
      {"attention", Attention},
      {"attentionBackward", AttentionBackward},
      {"embedding", Embedding},
      {"embeddingBackward", EmbeddingBackward},
      {"adamw", Adamw},
      {"trimPool", TrimPool},
      {"setPoolCap", SetPoolCap},
      {"qsupports", Qsupports},
      {"qmatmul", Qmatmul},
      {"qmatmulT", QmatmulT},
      {"qembedding", Qembedding},
  };
  for (const auto& [name, fn] : fns) exports.Set(name, Function::New(env, fn, name));
  return exports;
}

}  // namespace
}  // namespace rl4qe

static Napi::Object InitAll(Napi::Env env, Napi::Object exports) { return rl4qe::Init(env, exports); }

NODE_API_MODULE(rl4qe_native, InitAll)
