import { test } from 'node:test';
import assert from 'node:assert/strict';
import { main } from '../main.js';
import { configLayers } from './train.js';

/** Runs the CLI in-process with stdout and stderr captured. */
async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = process.stdout.write.bind(process.stdout);
  const e = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    const code = await main(args);
    return { code, out, err };
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
  }
}

test('train --compute is the refiner.compute layer, after --set, checked by the schema', async () => {
  const layers = configLayers({ config: [], set: ['refiner.compute=fp32'], compute: 'bf16' });
  assert.deepEqual(layers.at(-1), { source: '--compute', value: { refiner: { compute: 'bf16' } } });
  const ok = await run([
    'train',
    '-c',
    'configs/smoke.yaml',
    '--compute',
    'bf16',
    '--print-config',
  ]);
  assert.equal(ok.code, 0, ok.err);
  assert.equal((JSON.parse(ok.out) as { refiner: { compute: string } }).refiner.compute, 'bf16');
  const bad = await run([
    'train',
    '-c',
    'configs/smoke.yaml',
    '--compute',
    'bf17',
    '--print-config',
  ]);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /--compute/);
  // Full fine-tuning freezes nothing to round: refused, naming the flag.
  const full = await run([
    'train',
    '-c',
    'configs/smoke.yaml',
    '--set',
    'adapter.kind=full',
    '--set',
    'refiner.weights=float32',
    '--compute',
    'bf16',
    '--print-config',
  ]);
  assert.equal(full.code, 2);
  assert.match(full.err, /--compute refiner\.compute: impossible combination/);
});
