// RL4QE_PROFILE=1: every kernel call of the active backend is timed (wall clock around the call)
// and counted under a key that names the kernel and what decides its speed (matmul: m×k×n, layout
// and batch; binary/unary: the op and the size). `profileTable()` formats the totals, sorted by
// time; with the variable set the table is also printed to stderr when the process exits. The
// difference between a step's wall time and the sum of its kernels is JavaScript-side overhead.
import type { AttentionParams, Buf, FullBackend, MatmulParams, QuantWeight } from './backend.js';

export interface ProfileEntry {
  key: string;
  calls: number;
  /** Wall-clock milliseconds inside the kernel. */
  ms: number;
  /** Process CPU milliseconds (all threads) inside the kernel: less sensitive to other load. */
  cpuMs: number;
}

const table = new Map<string, ProfileEntry>();

/** Kernels not worth timing (no arithmetic) — still counted, under their own name. */
const PLAIN = new Set(['name', 'supports', 'liveBytes', 'trimPool']);

function keyOf(kernel: string, args: unknown[]): string {
  switch (kernel) {
    case 'matmul': {
      const p = args[3] as MatmulParams;
      const lay = `${p.transA ? 'T' : 'N'}${p.transB ? 'T' : 'N'}`;
      return `matmul ${lay} ${p.m}x${p.k}x${p.n}${p.batch > 1 ? ` b${p.batch}` : ''}${p.accumulate ? ' acc' : ''}`;
    }
    case 'qmatmul':
    case 'qmatmulT': {
      const w = args[1] as QuantWeight;
      return `${kernel} m=${String(args[3])} ${w.rows}x${w.cols} type ${w.type}`;
    }
    case 'binary': {
      const shape = args[6] as readonly number[];
      const n = shape.reduce((a, b) => a * b, 1);
      const zero = (st: readonly number[]): boolean => st.some((x, i) => x === 0 && shape[i] > 1);
      const bcast = zero(args[2] as readonly number[]) || zero(args[4] as readonly number[]);
      return `binary ${String(args[0])}${bcast ? ' bcast' : ''} n=${n}`;
    }
    case 'unary':
    case 'unaryBackward':
      return `${kernel} ${String(args[0])} n=${(args[1] as Buf).length}`;
    case 'affine':
      return `affine n=${(args[0] as Buf).length}`;
    case 'copyStrided': {
      const shape = args[6] as readonly number[];
      return `copyStrided [${shape.join(',')}]`;
    }
    case 'alloc':
    case 'allocUninit':
      return kernel;
    case 'attention':
    case 'attentionBackward': {
      const p = args[kernel === 'attention' ? 5 : 9] as AttentionParams;
      return `${kernel} b${p.batch} q${p.seqQ} k${p.seqK} h${p.heads}/${p.kvHeads}`;
    }
    case 'rmsnorm':
      return `rmsnorm rows=${String(args[2])}`;
    case 'reduce':
      return `reduce ${String(args[0])} ${String(args[2])}x${String(args[3])}x${String(args[4])}`;
    default:
      return kernel;
  }
}

/** Wrap `b` so every kernel call is timed into the profile table. */
export function profileBackend(b: FullBackend): FullBackend {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(b)) {
    if (PLAIN.has(key) || typeof value !== 'function') {
      out[key] = value;
      continue;
    }
    const fn = value as (...args: unknown[]) => unknown;
    out[key] = (...args: unknown[]): unknown => {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const r = fn.apply(b, args);
      const dt = performance.now() - t0;
      const c = process.cpuUsage(c0);
      const dc = (c.user + c.system) / 1000;
      const k = keyOf(key, args);
      const e = table.get(k);
      if (e) {
        e.calls++;
        e.ms += dt;
        e.cpuMs += dc;
      } else table.set(k, { key: k, calls: 1, ms: dt, cpuMs: dc });
      return r;
    };
  }
  return out as unknown as FullBackend;
}

export function profileEntries(): ProfileEntry[] {
  return [...table.values()].sort((a, b) => b.ms - a.ms);
}

export function resetProfile(): void {
  table.clear();
}

/** The totals as a text table (kernel key, calls, total ms, ms per call), slowest first. */
export function profileTable(limit = 60): string {
  const rows = profileEntries();
  const total = rows.reduce((s, r) => s + r.ms, 0);
  const cpu = rows.reduce((s, r) => s + r.cpuMs, 0);
  const lines = [
    `kernel profile: ${total.toFixed(1)} ms wall, ${cpu.toFixed(1)} ms CPU in ${rows.length} kernel keys`,
  ];
  const head = ['calls', 'ms', 'ms/call', 'cpu ms'].map((h) => h.padStart(9)).join(' ');
  lines.push(`${'kernel'.padEnd(44)} ${head}`);
  for (const r of rows.slice(0, limit)) {
    const cols = [
      String(r.calls),
      r.ms.toFixed(2),
      (r.ms / r.calls).toFixed(3),
      r.cpuMs.toFixed(1),
    ];
    lines.push(`${r.key.padEnd(44)} ${cols.map((c) => c.padStart(9)).join(' ')}`);
  }
  if (rows.length > limit) lines.push(`… ${rows.length - limit} more`);
  return lines.join('\n');
}

export function profileEnabled(): boolean {
  return process.env.RL4QE_PROFILE === '1';
}

let exitHook = false;
/** With RL4QE_PROFILE=1, print the table to stderr once when the process exits. */
export function printProfileAtExit(): void {
  if (exitHook) return;
  exitHook = true;
  process.on('exit', () => {
    if (table.size > 0) process.stderr.write(`${profileTable()}\n`);
  });
}
