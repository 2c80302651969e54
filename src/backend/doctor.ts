// The `backend` section of `rl4qe doctor`: the active backend and why, the native addon's
// status, CPU features, kernel set and threads, and which units the products use and why
// (a better kernel set's missing features, int8 decoding, the bf16 GEMM or why there is none, and
// what the bf16 compute mode would use).
import { backendInfo, bf16Support, nativeStatus } from './index.js';

export interface BackendDoctorSection {
  title: string;
  rows: [string, string][];
}

export function backendDoctorSection(): BackendDoctorSection {
  try {
    const b = backendInfo();
    return {
      title: 'backend',
      rows: [
        ['active', b.name],
        ['why', b.reason],
        ['native addon', b.nativeAvailable ? 'loaded' : 'not loaded'],
        ['native status', b.nativeReason],
        ['cpu features', b.features.length > 0 ? b.features.join(' ') : 'unknown'],
        ['kernel', b.kernel],
        ...unitRows(),
        ['threads', String(b.threads)],
        ['debug compare', b.debugCompare ? 'on (RL4QE_DEBUG_COMPARE=1)' : 'off'],
        ['nan check', process.env.RL4QE_CHECK_NAN === '1' ? 'on (RL4QE_CHECK_NAN=1)' : 'off'],
      ],
    };
  } catch (e) {
    const n = nativeStatus();
    const rows: [string, string][] = [['error', (e as Error).message.split('\n')[0]!]];
    if (n.refused) rows.push(['refused', n.refused]);
    return { title: 'backend', rows };
  }
}

/** The units rows: what the products run on, and a one-line note for every fallback. */
function unitRows(): [string, string][] {
  const info = nativeStatus().tools?.info();
  if (!info) return [];
  const rows: [string, string][] = [['units', info.units ?? 'unknown (older build)']];
  if (info.note) rows.push(['kernel note', info.note]);
  rows.push([
    'int8 decoding',
    (info.int8MaxM ?? 0) > 0
      ? process.env.RL4QE_INT8_DECODING === '0'
        ? 'available, forced off (RL4QE_INT8_DECODING=0)'
        : process.env.RL4QE_INT8_DECODING === '1'
          ? 'on (RL4QE_INT8_DECODING=1): quantised products of decoding steps on int8 activations'
          : 'available (generate int8Decoding: true, or RL4QE_INT8_DECODING=1); off by default'
      : `off: the ${info.kernel} kernel set has no int8 dot products (float path)`,
  ]);
  rows.push(['bf16 GEMM', info.bf16 ?? 'unknown (older build)']);
  rows.push(['bf16 compute', bf16ComputeLine()]);
  return rows;
}

/** What `--compute bf16` (refiner.compute) would run on here, and why (one line). */
export function bf16ComputeLine(): string {
  const s = bf16Support();
  return s.available
    ? `${s.units} (${s.reason})`
    : `unavailable, --compute bf16 falls back to fp32: ${s.reason}`;
}
