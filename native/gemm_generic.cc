// The generic kernel set: isa_impl.h compiled with this file's -m flags (see binding.gyp).
#define RL4QE_ISA generic
#include "isa_impl.h"

namespace rl4qe {
const KernelTable* tableGeneric() { return &generic::kTable; }
}  // namespace rl4qe
