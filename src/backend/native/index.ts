// Loader of the native C++ addon (native/, built by scripts/build-native.mjs into
// build/Release/rl4qe_native.node). The addon's raw surface is addon.ts, its Backend binding
// backend.ts (float64 buffers go to the reference backend given as the fallback), its benchmark
// and doctor hooks tools.ts.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMainThread } from 'node:worker_threads';
import { referenceBackend } from '../reference/index.js';
import type { Backend } from '../backend.js';
import { missingFunctions, type Addon } from './addon.js';
import { createNativeBackend } from './backend.js';
import { toolsOf, type NativeTools } from './tools.js';

export type { NativeInfo } from './addon.js';
export type { NativeTools } from './tools.js';
export { createNativeBackend, type NativeBackend } from './backend.js';

export interface NativeLoadResult {
  /** The native backend, or null when the addon is missing or failed to load. */
  backend: Backend | null;
  /** Why native is (not) active, printed by `rl4qe doctor` and in the one-time warning. */
  reason: string;
  /** Detected CPU features (e.g. avx512f, avx2, fma) and the kernel set chosen. */
  features: string[];
  /** Set when RL4QE_KERNEL forces a kernel set this CPU cannot run: the backend is then null and
   * getBackend() throws this message instead of falling back. */
  refused?: string;
  kernel: string;
  threads: number;
  /** Benchmark and diagnostic hooks of the loaded addon (null or absent when it did not load). */
  tools?: NativeTools | null;
}

/** The folder holding package.json: build/Release/ lives there, whether we run from src or dist. */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'binding.gyp')))
      return dir;
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
}

/** Where the addon is looked for: $RL4QE_NATIVE_PATH, else build/Release/rl4qe_native.node. */
export function nativeAddonPath(): string {
  const env = process.env.RL4QE_NATIVE_PATH;
  if (env && env.length > 0) return path.resolve(env);
  return path.join(packageRoot(), 'build', 'Release', 'rl4qe_native.node');
}

function buildNote(): string {
  try {
    const file = path.join(packageRoot(), 'build', 'rl4qe-native-build.json');
    const j = JSON.parse(readFileSync(file, 'utf8')) as { ok?: boolean; reason?: string };
    return j.ok === false && j.reason ? ` (the install-time build said: ${j.reason})` : '';
  } catch {
    return '';
  }
}

/** CPU features from /proc/cpuinfo (Linux), named as the addon names them; for `doctor` when the addon is missing. */
export function cpuFeaturesFromOs(): string[] {
  try {
    const text = readFileSync('/proc/cpuinfo', 'utf8');
    const line = text.split('\n').find((l) => l.startsWith('flags'));
    if (!line) return [];
    const flags = new Set(line.split(':')[1]?.trim().split(/\s+/) ?? []);
    const names: [string, string][] = [
      ['sse4_2', 'sse4.2'],
      ['avx', 'avx'],
      ['avx2', 'avx2'],
      ['fma', 'fma'],
      ['avx512f', 'avx512f'],
      ['avx512dq', 'avx512dq'],
      ['avx512bw', 'avx512bw'],
      ['avx512vl', 'avx512vl'],
      ['avx512_vnni', 'avx512vnni'],
      ['avx512_bf16', 'avx512bf16'],
    ];
    return names.filter(([os]) => flags.has(os)).map(([, name]) => name);
  } catch {
    return [];
  }
}

/**
 * OpenMP threads that finish early spin before sleeping (GOMP's default: ~300k spins). On a
 * machine shared with other busy processes that spinning steals the core from the thread it waits
 * for, and short GEMMs ran 2-3× slower than OpenBLAS (whose workers yield); a short spin keeps the
 * hand-off fast on an idle machine. libgomp reads the variable once, when the addon loads it, from
 * the process's real environment, which only the MAIN thread's `process.env` writes: a worker
 * thread's `process.env` is a private copy that native code never sees (measured: 3,000 small
 * matmuls in a worker took 11.6–29.8 s at load 5–6 with the setting made there, 5.1–7.1 s with it
 * in the real environment). So whoever starts a worker thread that loads the addon calls this
 * first, in the main thread; a user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.
 */
export function applyOmpDefaults(): void {
  if (!isMainThread) return;
  if (process.env.OMP_WAIT_POLICY === undefined && process.env.GOMP_SPINCOUNT === undefined) {
    process.env.GOMP_SPINCOUNT = '2000';
  }
}

/**
 * Loads the addon at `file` (uncached; loadNative() caches the default one). Never throws: a
 * missing or broken addon gives backend null and the reason.
 */
export function loadNativeFrom(file: string, fallback: Backend | null = null): NativeLoadResult {
  const none = (reason: string): NativeLoadResult => ({
    backend: null,
    reason,
    features: cpuFeaturesFromOs(),
    kernel: 'none',
    threads: 1,
    tools: null,
  });
  if (process.env.RL4QE_NATIVE === '0') return none('disabled by RL4QE_NATIVE=0');
  if (!existsSync(file)) {
    return none(
      `the native addon is not built (${file} is missing)${buildNote()}; ` +
        'run `node scripts/build-native.mjs` to build it and see why it failed',
    );
  }
  applyOmpDefaults();
  let mod: unknown;
  try {
    const require = createRequire(import.meta.url);
    mod = require(file);
  } catch (e) {
    const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
    return none(
      `the native addon at ${file} failed to load: ${msg}; rebuild it with \`node scripts/build-native.mjs\``,
    );
  }
  const missing = missingFunctions(mod);
  if (missing.includes('info') || missing.includes('matmul')) {
    return none(`${file} is not the rl4qe native addon`);
  }
  if (missing.length > 0) {
    return none(
      `the native addon at ${file} is a stale build (it lacks ${missing.join(', ')}); ` +
        'rebuild it with `node scripts/build-native.mjs`',
    );
  }
  const addon = mod as Addon;
  const info = addon.info();
  if (info.refused) {
    return {
      ...none(`${info.refused}; unset RL4QE_KERNEL or name one of those`),
      refused: info.refused,
    };
  }
  const why =
    `loaded ${file}: ${info.kernel} kernels (${info.mr}×${info.nr} GEMM tile), ` +
    `${info.threads} OpenMP threads` +
    (info.units ? `, ${info.units}` : '') +
    (info.note ? `; ${info.note}` : '');
  return {
    backend: createNativeBackend(addon, fallback),
    reason: why,
    features: info.features,
    kernel: info.kernel,
    threads: info.threads,
    tools: toolsOf(addon),
  };
}

let cached: NativeLoadResult | null = null;

/** Loads the native addon once per process (see nativeAddonPath for where it is looked for). */
export function loadNative(): NativeLoadResult {
  cached ??= loadNativeFrom(nativeAddonPath(), referenceBackend);
  return cached;
}
