// Threads, per-thread scratch memory.
#include <omp.h>

#include <cstdlib>
#include <cstring>

#include "kernels.h"

namespace rl4qe {

static int g_threads = 0;

int numThreads() {
  if (g_threads <= 0) {
    const char* env = std::getenv("RL4QE_THREADS");
    int n = env ? std::atoi(env) : 0;
    if (n <= 0) n = omp_get_num_procs();
    g_threads = n > 0 ? n : 1;
  }
  return g_threads;
}

void setNumThreads(int n) { g_threads = n > 0 ? n : 0; }

namespace {
struct Slot {
  float* ptr = nullptr;
  size_t cap = 0;
  ~Slot() { std::free(ptr); }
};
thread_local Slot t_slots[static_cast<int>(Scratch::Count)];
}  // namespace

float* scratch(Scratch slot, size_t floats) {
  Slot& s = t_slots[static_cast<int>(slot)];
  if (s.cap < floats) {
    std::free(s.ptr);
    const size_t bytes = ((floats * sizeof(float)) + 63) / 64 * 64;
    s.ptr = static_cast<float*>(std::aligned_alloc(64, bytes));
    s.cap = s.ptr ? floats : 0;
    if (!s.ptr) std::abort();  // out of memory for a few MiB of scratch: nothing sane to do
  }
  return s.ptr;
}

}  // namespace rl4qe
