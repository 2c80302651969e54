// The avx512 kernel set: isa_impl.h compiled with this file's -m flags (see binding.gyp).
#define RL4QE_ISA avx512
#include "isa_impl.h"

namespace rl4qe {
const KernelTable* tableAvx512() { return &avx512::kTable; }
}  // namespace rl4qe
