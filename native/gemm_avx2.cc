// The avx2 kernel set: isa_impl.h compiled with this file's -m flags (see binding.gyp).
#define RL4QE_ISA avx2
#include "isa_impl.h"

namespace rl4qe {
const KernelTable* tableAvx2() { return &avx2::kTable; }
}  // namespace rl4qe
