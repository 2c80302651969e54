// Loader for the native C++ addon (built by scripts/build-native.mjs into build/Release/).
// Stub until the addon lands: reports why native is unavailable.
import type { Backend } from '../backend.js';

export interface NativeLoadResult {
  /** The native backend, or null when the addon is missing or failed to load. */
  backend: Backend | null;
  /** Why native is (not) active, printed by `rl4qe doctor` and in the one-time warning. */
  reason: string;
  /** Detected CPU features (e.g. avx512f, avx2, fma) and the kernel set chosen. */
  features: string[];
  kernel: string;
  threads: number;
}

export function loadNative(): NativeLoadResult {
  return {
    backend: null,
    reason: 'the native addon is not part of this build yet',
    features: [],
    kernel: 'none',
    threads: 1,
  };
}
