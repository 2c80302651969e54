// Backend selection. The active backend is chosen once, lazily, at the first use:
//   RL4QE_BACKEND=reference  → reference
//   RL4QE_BACKEND=native     → native, or an error saying why the addon did not load
//   unset                    → native when the addon loaded, otherwise reference with ONE warning
// RL4QE_DEBUG_COMPARE=1 wraps the active backend so every kernel also runs on reference in
// float64 and a disagreement throws (src/backend/compare.ts). RL4QE_PROFILE=1 times every kernel
// call and prints a table at exit (src/backend/profile.ts).
// A native backend that lacks a kernel gets the reference one (withFallback), so kernels can be
// added to the interface and made fast later.
import { ConfigError, NotFoundError } from '../util/errors.js';
import { createLogger } from '../util/log.js';
import type { Backend, FullBackend } from './backend.js';
import { compareBackend } from './compare.js';
import { printProfileAtExit, profileBackend, profileEnabled } from './profile.js';
import { loadNative, type NativeLoadResult } from './native/index.js';
import { referenceBackend } from './reference/index.js';

export * from './backend.js';
export { referenceBackend } from './reference/index.js';
export { applyOmpDefaults } from './native/index.js';
export { compareBackend, type CompareOptions } from './compare.js';
export { bf16Support, type Bf16Support } from './bf16-support.js';
export {
  profileBackend,
  profileEntries,
  profileTable,
  resetProfile,
  type ProfileEntry,
} from './profile.js';

export type BackendName = 'reference' | 'native';

const log = createLogger('backend');

let nativeResult: NativeLoadResult | undefined;
let active: FullBackend | undefined;
let activeReason = '';

/** Fill every kernel a backend does not implement with the reference kernel. */
export function withFallback(b: Backend): FullBackend {
  const out: Record<string, unknown> = {};
  for (const [key, fn] of Object.entries(referenceBackend)) {
    const own = (b as unknown as Record<string, unknown>)[key];
    // Bind: the native backend may be a class instance whose methods use `this`.
    out[key] = own === undefined ? fn : typeof own === 'function' ? own.bind(b) : own;
  }
  out.name = b.name;
  // Never the reference allocator for another backend's memory.
  if (b.allocUninit === undefined) out.allocUninit = out.alloc;
  // The reference counter knows nothing of another backend's memory.
  if (b.liveBytes === undefined) out.liveBytes = () => NaN;
  // Nor may it trim another backend's pool.
  if (b.trimPool === undefined) out.trimPool = () => 0;
  if (b.setPoolCapMb === undefined) out.setPoolCapMb = () => 0;
  return out as unknown as FullBackend;
}

/** The native addon's load result (loaded at most once). */
export function nativeStatus(): NativeLoadResult {
  if (!nativeResult) {
    try {
      nativeResult = loadNative();
    } catch (e) {
      nativeResult = {
        backend: null,
        reason: `loading the native addon threw: ${(e as Error).message}`,
        features: [],
        kernel: 'none',
        threads: 1,
      };
    }
  }
  return nativeResult;
}

function debugCompareEnabled(): boolean {
  return process.env.RL4QE_DEBUG_COMPARE === '1';
}

/** RL4QE_KERNEL forcing a kernel set the CPU lacks is an error, never a quiet fallback. */
function refuseForcedKernel(n: NativeLoadResult): void {
  if (n.refused) {
    throw new ConfigError('RL4QE_KERNEL names a kernel set this CPU cannot run', {
      where: 'RL4QE_KERNEL',
      found: n.refused,
      hint: 'unset RL4QE_KERNEL (the best set the CPU runs is chosen) or name a set it runs',
    });
  }
}

function resolve(name: BackendName): FullBackend {
  if (name === 'reference') return referenceBackend;
  const n = nativeStatus();
  refuseForcedKernel(n);
  if (!n.backend) {
    throw new NotFoundError('the native backend is not available', {
      where: 'backend',
      found: n.reason,
      hint: 'rebuild the addon with `node scripts/build-native.mjs`, or use RL4QE_BACKEND=reference',
    });
  }
  return withFallback(n.backend);
}

function wrap(b: FullBackend): FullBackend {
  const c = debugCompareEnabled() ? compareBackend(b) : b;
  if (!profileEnabled()) return c;
  printProfileAtExit();
  return profileBackend(c);
}

/** Select the backend for float32 ops. Float64 always runs on reference. */
export function setBackend(name: BackendName): void {
  if (name !== 'reference' && name !== 'native') {
    throw new ConfigError('unknown backend', {
      where: 'setBackend',
      expected: "'reference' or 'native'",
      found: String(name),
    });
  }
  active = wrap(resolve(name));
  activeReason = `selected by setBackend('${name}')`;
}

/** The active backend (chosen from RL4QE_BACKEND on first use). */
export function getBackend(): FullBackend {
  if (active) return active;
  const env = process.env.RL4QE_BACKEND;
  if (env !== undefined && env !== '') {
    if (env !== 'reference' && env !== 'native') {
      throw new ConfigError('RL4QE_BACKEND names no backend', {
        where: 'RL4QE_BACKEND',
        expected: "'reference' or 'native'",
        found: env,
      });
    }
    active = wrap(resolve(env));
    activeReason = `RL4QE_BACKEND=${env}`;
    return active;
  }
  const n = nativeStatus();
  refuseForcedKernel(n);
  if (n.backend) {
    active = wrap(withFallback(n.backend));
    activeReason = `native addon loaded (${n.reason})`;
  } else {
    active = wrap(referenceBackend);
    activeReason = `native addon not loaded: ${n.reason}`;
    log.warn(
      `using the slow reference backend: ${n.reason}. ` +
        'Build the addon with `node scripts/build-native.mjs` (needs g++ and node-gyp), ' +
        'or set RL4QE_BACKEND=reference to silence this warning.',
    );
  }
  return active;
}

export interface BackendInfo {
  /** The backend float32 ops run on. */
  name: BackendName;
  /** Why this backend is active. */
  reason: string;
  nativeAvailable: boolean;
  /** The native loader's own message (why it loaded or did not). */
  nativeReason: string;
  features: string[];
  kernel: string;
  threads: number;
  debugCompare: boolean;
  /** Bytes allocated and not released on the active backend (NaN when it does not count them). */
  liveBytes: number;
}

export function backendInfo(): BackendInfo {
  const b = getBackend();
  const n = nativeStatus();
  return {
    name: b.name,
    reason: activeReason,
    nativeAvailable: n.backend !== null,
    nativeReason: n.reason,
    features: n.features,
    kernel: n.kernel,
    threads: b.name === 'native' ? n.threads : 1,
    debugCompare: debugCompareEnabled(),
    liveBytes: b.liveBytes(),
  };
}
