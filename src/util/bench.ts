// The benchmark contract shared by every `rl4qe bench NAME --json`: the last stdout line is one
// JSON object {bench, machine, cases: [{case, value, unit, ratios: {BASELINE: ours/baseline}}]},
// ratios oriented so that > 1 means rl4qe is better, all measured in the same run.
import os from 'node:os';
import { cpuLabel } from './cpu-id.js';

export interface BenchCase {
  case: string;
  value: number;
  unit: string;
  /** Ratio keys used across the project: peak, openblas, reference, pytorch, transformers, llama.cpp, naive, sequential. */
  ratios: Record<string, number>;
  /** Anything else worth keeping (baseline values, sizes, notes). */
  extra?: Record<string, unknown>;
}

export interface BenchReport {
  bench: string;
  machine: Record<string, unknown>;
  cases: BenchCase[];
}

export function machineInfo(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    // Vendor, family, model and microarchitecture: the model string alone can be just "AMD EPYC".
    cpuId: cpuLabel(),
    cores: os.cpus().length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    date: new Date().toISOString(),
    // 1/5/15-minute load averages at the report's end: a loaded machine's ratios are noisier.
    loadavg: os.loadavg().map((l) => Math.round(l * 100) / 100),
    ...extra,
  };
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1
    ? (s[mid] as number)
    : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Runs fn `warmup` times, then `runs` times, and returns the median wall time in seconds. */
export async function timeMedian(
  fn: () => unknown | Promise<unknown>,
  runs = 5,
  warmup = 1,
): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const ts: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    ts.push((performance.now() - t0) / 1000);
  }
  return median(ts);
}
