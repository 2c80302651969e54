// What CPU this is, beyond the model string: "AMD EPYC" (what a cloud VM reports) names neither
// the generation nor its caches, and the kernels' speed depends on both. Vendor, family and model
// come from /proc/cpuinfo (Linux); the microarchitecture from the few families this project runs
// on, null for the rest (never guessed).
import os from 'node:os';
import { readFileSync } from 'node:fs';

export interface CpuId {
  /** The model string (os.cpus()[0].model). */
  model: string;
  vendor: string | null;
  family: number | null;
  modelNumber: number | null;
  /** e.g. "Zen 5", "Sapphire Rapids"; null when not in the table. */
  microarch: string | null;
}

/** AMD families (cpu family from cpuinfo); Intel's are family 6 with these model numbers. */
export function microarchOf(
  vendor: string | null,
  family: number | null,
  model: number | null,
): string | null {
  if (family === null || model === null) return null;
  if (vendor === 'AuthenticAMD') {
    if (family === 0x17) return model >= 0x30 ? 'Zen 2' : 'Zen / Zen+';
    if (family === 0x19) {
      // Zen 3: 0x00–0x0f, 0x20–0x5f; Zen 4: 0x10–0x1f, 0x60–0x7f, 0xa0–0xaf.
      if (
        (model >= 0x10 && model <= 0x1f) ||
        (model >= 0x60 && model <= 0x7f) ||
        (model >= 0xa0 && model <= 0xaf)
      )
        return 'Zen 4';
      return 'Zen 3';
    }
    if (family === 0x1a) return 'Zen 5';
    return null;
  }
  if (vendor === 'GenuineIntel' && family === 6) {
    const intel: Record<number, string> = {
      0x55: 'Skylake-SP / Cascade Lake',
      0x6a: 'Ice Lake-SP',
      0x6c: 'Ice Lake-D',
      0x8f: 'Sapphire Rapids',
      0xcf: 'Emerald Rapids',
      0xad: 'Granite Rapids',
      0xae: 'Granite Rapids-D',
      0x97: 'Alder Lake',
      0xb7: 'Raptor Lake',
    };
    return intel[model] ?? null;
  }
  return null;
}

let cached: CpuId | undefined;

export function cpuId(): CpuId {
  if (cached) return cached;
  const model = os.cpus()[0]?.model.trim() ?? 'unknown';
  let vendor: string | null = null;
  let family: number | null = null;
  let modelNumber: number | null = null;
  try {
    const text = readFileSync('/proc/cpuinfo', 'utf8');
    const field = (name: string): string | undefined =>
      new RegExp(`^${name}\\s*:\\s*(.+)$`, 'm').exec(text)?.[1]?.trim();
    vendor = field('vendor_id') ?? null;
    const f = Number(field('cpu family'));
    const m = Number(field('model'));
    family = Number.isInteger(f) ? f : null;
    modelNumber = Number.isInteger(m) ? m : null;
  } catch {
    // Not Linux: the model string is all there is.
  }
  cached = {
    model,
    vendor,
    family,
    modelNumber,
    microarch: microarchOf(vendor, family, modelNumber),
  };
  return cached;
}

/** One line: "AMD EPYC (AuthenticAMD family 26 model 2: Zen 5)". */
export function cpuLabel(id: CpuId = cpuId()): string {
  if (id.family === null) return id.model;
  const arch = id.microarch ? `: ${id.microarch}` : '';
  return `${id.model} (${id.vendor ?? '?'} family ${id.family} model ${id.modelNumber ?? '?'}${arch})`;
}
