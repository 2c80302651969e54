// RL4QE_DEBUG_COMPARE=1: every kernel runs on the active backend AND on the reference backend in
// float64 (on float64 copies of every buffer argument, taken before the call), and each buffer
// argument is compared afterwards (inputs trivially agree; outputs, accumulators and in-place
// updates are what is checked). A disagreement throws NumericError naming the kernel, the argument
// position and the worst element. Slow by design: it is a debugging switch.
import { NumericError } from '../util/errors.js';
import type { Buf, FullBackend } from './backend.js';
import { referenceBackend } from './reference/index.js';

export interface CompareOptions {
  /** The oracle (default: the reference backend). */
  oracle?: FullBackend;
  /** Allowed |ours − oracle| / max(1, max |oracle|) per kernel (default 1e-3). */
  tolerance?: Partial<Record<keyof FullBackend, number>>;
}

const DEFAULT_TOL = 1e-3;
/** Kernels passed straight through (memory management, no numerical result). */
const PASS_THROUGH = new Set([
  'name',
  'supports',
  'alloc',
  'allocUninit',
  'release',
  'liveBytes',
  'trimPool',
  'fill',
]);

function isBuf(x: unknown): x is Buf {
  return x instanceof Float32Array || x instanceof Float64Array;
}

function worst(ours: Buf, oracle: Buf): { err: number; index: number } {
  let scale = 1;
  for (let i = 0; i < oracle.length; i++) {
    const a = Math.abs(oracle[i]);
    if (Number.isFinite(a) && a > scale) scale = a;
  }
  let err = 0;
  let index = -1;
  for (let i = 0; i < oracle.length; i++) {
    const a = ours[i];
    const b = oracle[i];
    if (a === b || (Number.isNaN(a) && Number.isNaN(b))) continue;
    const e = Number.isFinite(a) && Number.isFinite(b) ? Math.abs(a - b) / scale : Infinity;
    if (e > err) {
      err = e;
      index = i;
    }
  }
  return { err, index };
}

/** Wrap `primary` so each kernel is checked against the oracle in float64. */
export function compareBackend(primary: FullBackend, opts: CompareOptions = {}): FullBackend {
  const oracle = opts.oracle ?? referenceBackend;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(primary)) {
    if (PASS_THROUGH.has(key) || typeof value !== 'function') {
      out[key] = value;
      continue;
    }
    const tol = opts.tolerance?.[key as keyof FullBackend] ?? DEFAULT_TOL;
    const ours = value as (...args: unknown[]) => unknown;
    const theirs = (oracle as unknown as Record<string, (...args: unknown[]) => unknown>)[key];
    out[key] = (...args: unknown[]): unknown => {
      // One copy per distinct buffer, so in-place calls (out === x) stay in place on the oracle.
      const copyOf = new Map<Buf, Float64Array>();
      const copies = args.map((a) => {
        if (!isBuf(a)) return a;
        let c = copyOf.get(a);
        if (!c) copyOf.set(a, (c = Float64Array.from(a)));
        return c;
      });
      const result = ours.apply(primary, args);
      theirs.apply(oracle, copies);
      for (let i = 0; i < args.length; i++) {
        const a = args[i];
        const c = copies[i];
        if (!isBuf(a) || !isBuf(c)) continue;
        const { err, index } = worst(a, c);
        if (err > tol) {
          throw new NumericError(`kernel ${key} disagrees with the float64 reference`, {
            where: `backend ${primary.name}: ${key} (buffer argument ${i})`,
            expected: `relative error ≤ ${tol}, element ${index}: ${c[index]}`,
            found: `relative error ${err.toExponential(3)}, element ${index}: ${a[index]}`,
            hint: 'run the conformance suite (node scripts/run-tests.mjs conformance) for this kernel',
          });
        }
      }
      return result;
    };
  }
  return out as unknown as FullBackend;
}
