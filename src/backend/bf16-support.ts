// Whether the bf16 compute mode can run fast on this machine, which units it would use and why:
// the one place the model conversion (models/compute.ts), `rl4qe doctor` and the benches ask.
import { getBackend, nativeStatus } from './index.js';

export interface Bf16Support {
  /** True when the active backend multiplies bf16 weights on a bf16 unit. */
  available: boolean;
  /** The units ("AVX512-BF16 vdpbf16ps (fp32 accumulation)"), or "none". */
  units: string;
  /** Why: what was found, or what is missing (one line). */
  reason: string;
}

export function bf16Support(): Bf16Support {
  const be = getBackend();
  const info = nativeStatus().tools?.info();
  if (be.name !== 'native') {
    return {
      available: false,
      units: 'none',
      reason: `the active backend is ${be.name} (the bf16 products need the native addon)`,
    };
  }
  if (!be.bf16Fast()) {
    const why = info?.bf16 ?? 'the native addon is an older build without the bf16 GEMM';
    return { available: false, units: 'none', reason: why.replace(/^none: /, '') };
  }
  // AMX tiles would be the faster unit where the CPU has them, but no AMX kernel is built: there
  // was no AMX CPU to test one on, and untested kernels are not shipped.
  const amx = (info?.features ?? []).includes('amx-bf16');
  return {
    available: true,
    units: 'AVX512-BF16 vdpbf16ps, fp32 accumulation',
    reason: amx
      ? 'the CPU has avx512bf16 and AMX-BF16 tiles; this build has no AMX kernels (untested), so AVX512-BF16 is used'
      : 'the CPU has avx512bf16 and no AMX tiles',
  };
}
