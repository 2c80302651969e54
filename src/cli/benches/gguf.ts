// rl4qe bench gguf: GGUF load time of the offline test models — header parse (all metadata,
// incl. the vocabulary) and dequantisation of every tensor to float32 — against gguf-py + numpy
// on the same file in the same run (ratio key `gguf-py`, > 1 means rl4qe is faster).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { GgufFile } from '../../io/gguf/index.js';
import { machineInfo, timeMedian, type BenchCase, type BenchReport } from '../../util/bench.js';
import { NotFoundError } from '../../util/errors.js';
import { cachePaths } from '../../util/paths.js';
import type { BenchOptions } from './index.js';

const MODELS = [
  ['smollm2-135m', 'smollm2-135m-instruct-q4_1.gguf'],
  ['qwen2.5-coder-0.5b', 'qwen2.5-coder-0.5b-instruct-awq-q4_k_m.gguf'],
] as const;

const SCRIPT = fileURLToPath(new URL('../../../../scripts/bench_gguf.py', import.meta.url));

export async function benchGguf(opts: BenchOptions): Promise<BenchReport> {
  const runs = opts.quick ? 1 : 3;
  const models = opts.quick ? MODELS.slice(0, 1) : MODELS;
  const py = path.join(cachePaths.oracleVenv(), 'bin', 'python');
  const cases: BenchCase[] = [];
  for (const [id, file] of models) {
    const p = path.join(cachePaths.testModels(), file);
    if (!fs.existsSync(p)) {
      throw new NotFoundError('test model missing', {
        where: p,
        hint: 'run: node scripts/fetch-test-models.mjs',
      });
    }
    opts.log(`gguf: ${id}: rl4qe (${runs} runs)`);
    const header = await timeMedian(() => GgufFile.open(p).close(), runs, 1);
    let weights = 0;
    const dequant = await timeMedian(
      () => {
        using f = GgufFile.open(p);
        weights = 0;
        for (const t of f.tensors) weights += f.readTensorF32(t).length;
      },
      runs,
      0,
    );
    let base: { header_s: number; dequant_s: number } | undefined;
    if (fs.existsSync(py)) {
      opts.log(`gguf: ${id}: gguf-py (${runs} runs)`);
      const r = spawnSync(py, [SCRIPT, p, String(runs)], { encoding: 'utf8' });
      if (r.status === 0) base = JSON.parse(r.stdout.trim().split('\n').pop()!);
      else opts.log(`gguf: gguf-py baseline failed: ${r.stderr.slice(-500)}`);
    } else opts.log(`gguf: no oracle venv at ${py}: no baseline ratio`);
    cases.push({
      case: `${id}/header`,
      value: header,
      unit: 's',
      ratios: base ? { 'gguf-py': base.header_s / header } : {},
      extra: { baseline_s: base?.header_s },
    });
    cases.push({
      case: `${id}/dequant-all`,
      value: dequant,
      unit: 's',
      ratios: base ? { 'gguf-py': base.dequant_s / dequant } : {},
      extra: { baseline_s: base?.dequant_s, weights, weightsPerSecond: weights / dequant },
    });
  }
  return { bench: 'gguf', machine: machineInfo(), cases };
}
