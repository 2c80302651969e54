// The addon's memory: 64-byte aligned blocks handed to JavaScript as Float32Arrays, the live
// blocks by address, and a pool of released blocks kept for reuse by exact size. Pure C++ (no
// N-API): addon.cc wraps it and tells V8 about the bytes really malloc'd or freed, which every
// function here returns.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rl4qe {
namespace mem {

/** One block handed out; `freed` is set once it went back (release() or the GC, whichever is first). */
struct Block {
  void* ptr;
  size_t bytes;
  bool freed;
};

/** Blocks of at least this many bytes come from mmap: fresh pages are zero and cost nothing until touched. */
constexpr size_t kMapMin = size_t(1) << 20;

/** The size a block of `floats` floats takes: a multiple of 64 bytes, at least 64. */
size_t blockBytes(size_t floats);

/**
 * A block of `bytes` (from blockBytes): a pooled one if there is one, else fresh memory (then
 * *fresh = true, and a fresh block of kMapMin or more is already zero). Null when out of memory.
 * The block is live (tracked) on return.
 */
Block* take(size_t bytes, bool* fresh);

/** Gives a live block back (to the pool, or freed when over the cap); returns the bytes freed. */
int64_t give(Block* blk);

/** The live block starting at `ptr`, or null (JS-owned memory, or a block given back). */
Block* find(void* ptr);

/** Bytes in live blocks (the pool not counted). */
int64_t liveBytes();

/** Frees every pooled block; returns the bytes freed. */
int64_t trim();

/** Sets the pool's cap (bytes) and frees pooled blocks down to it; *prev = the old cap. Returns the bytes freed. */
int64_t setCap(size_t bytes, size_t* prev);

}  // namespace mem
}  // namespace rl4qe
