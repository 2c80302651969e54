// The addon's allocator (allocator.h): live blocks and the reuse pool, behind one mutex shared by
// every Node thread (worker_threads) that loads the addon.
#include "allocator.h"

#include <sys/mman.h>

#include <cstdlib>
#include <iterator>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace rl4qe {
namespace mem {
namespace {

std::mutex g_mutex;
// Live blocks by address.
std::unordered_map<void*, Block*> g_live;
int64_t g_liveBytes = 0;

// Released memory is kept for reuse, by exact size: a training step allocates the same sizes
// every step, and a fresh multi-megabyte malloc costs page faults (glibc maps and unmaps large
// blocks; ~0.8 ms for 1.5 MB, more than the kernel that fills it) while V8 sees external-memory
// churn and runs extra full GCs. V8 is told about memory when it is really malloc'd or freed, so
// pooled blocks still count as external memory. At most the cap is kept; to fit a new block,
// pooled blocks are freed until it fits.
std::unordered_map<size_t, std::vector<void*>> g_pool;
size_t g_poolBytes = 0;

// The cap starts from RL4QE_POOL_MB (default 1024, 0 = no pool) and may be changed at run time
// (setCap): a training step allocates several GiB of activations of the same sizes every step,
// far beyond the 1 GiB default that suits inference; with the cap below a step's working set,
// every step's activations come from fresh mmap pages (page faults were ~30% of a SmolLM2 LoRA
// step's CPU time).
size_t envPoolCap() {
  const char* e = std::getenv("RL4QE_POOL_MB");
  const long mb = e && *e ? std::strtol(e, nullptr, 10) : 1024;
  return mb > 0 ? (size_t)mb << 20 : (size_t)0;
}
size_t g_poolCap = envPoolCap();

// Blocks of kMapMin or more come straight from mmap: fresh anonymous pages are zero, so a zeroed
// allocation needs no fill, and untouched pages take no memory. A model is built with zero
// placeholder weights that the loader replaces one by one; filling them made the whole model's
// size resident before the first real weight was read (a quantised load peaked at the float32
// size). The size alone says how a block was obtained, so the pool frees it the same way.
void* rawAlloc(size_t bytes) {
  if (bytes < kMapMin) return std::aligned_alloc(64, bytes);
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

void rawFree(void* p, size_t bytes) {
  if (bytes < kMapMin) std::free(p);
  else munmap(p, bytes);
}

// Frees pooled blocks (any size) until the pool holds at most `target` bytes. Lock held.
int64_t shrinkLocked(size_t target) {
  int64_t freed = 0;
  for (auto it = g_pool.begin(); it != g_pool.end() && g_poolBytes > target;) {
    auto& list = it->second;
    while (!list.empty() && g_poolBytes > target) {
      rawFree(list.back(), it->first);
      list.pop_back();
      g_poolBytes -= it->first;
      freed += (int64_t)it->first;
    }
    it = list.empty() ? g_pool.erase(it) : std::next(it);
  }
  return freed;
}

}  // namespace

size_t blockBytes(size_t floats) {
  const size_t b = (floats * sizeof(float) + 63) / 64 * 64;
  return b < 64 ? 64 : b;
}

Block* take(size_t bytes, bool* fresh) {
  void* p = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = g_pool.find(bytes);
    if (it != g_pool.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      g_poolBytes -= bytes;
    }
  }
  *fresh = p == nullptr;
  if (!p) p = rawAlloc(bytes);
  if (!p) return nullptr;
  Block* blk = new Block{p, bytes, false};
  std::lock_guard<std::mutex> lock(g_mutex);
  g_live[p] = blk;
  g_liveBytes += (int64_t)bytes;
  return blk;
}

int64_t give(Block* blk) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_live.erase(blk->ptr);
  g_liveBytes -= (int64_t)blk->bytes;
  blk->freed = true;
  if (blk->bytes > g_poolCap) {
    rawFree(blk->ptr, blk->bytes);
    return (int64_t)blk->bytes;
  }
  // Over the cap: make room for this block first.
  const int64_t freed = g_poolBytes + blk->bytes > g_poolCap ? shrinkLocked(g_poolCap - blk->bytes) : 0;
  g_pool[blk->bytes].push_back(blk->ptr);
  g_poolBytes += blk->bytes;
  return freed;
}

Block* find(void* ptr) {
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_live.find(ptr);
  return it == g_live.end() ? nullptr : it->second;
}

int64_t liveBytes() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_liveBytes;
}

int64_t trim() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return shrinkLocked(0);
}

int64_t setCap(size_t bytes, size_t* prev) {
  std::lock_guard<std::mutex> lock(g_mutex);
  *prev = g_poolCap;
  g_poolCap = bytes;
  return shrinkLocked(bytes);
}

}  // namespace mem
}  // namespace rl4qe
