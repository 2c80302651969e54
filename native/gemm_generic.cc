// The generic kernel set: isa_impl.inc compiled with this file's -m flags (see binding.gyp).
#define RL4QE_ISA generic
#include "isa_impl.inc"

namespace rl4qe {
const KernelTable* tableGeneric() { return &generic::kTable; }
}  // namespace rl4qe
