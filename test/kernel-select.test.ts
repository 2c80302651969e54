// Kernel-set choice from the CPU features (native/addon.cc): a CPU without a unit falls back to
// the next set with a note saying which features are missing; RL4QE_KERNEL naming a set the CPU
// lacks (or no set at all) is refused with a clear error, never run. RL4QE_HIDE_FEATURES makes
// the CPU look as if it lacked features, so this runs on any x86-64 machine. Each case is a
// child process (the choice is made once, when the addon loads).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadNative } from '../src/backend/native/index.js';

const skip = process.env.RL4QE_SKIP_NATIVE === '1' ? 'RL4QE_SKIP_NATIVE=1' : false;
const indexJs = fileURLToPath(new URL('../src/backend/index.js', import.meta.url));

interface Probe {
  kernel?: string;
  note?: string;
  bf16?: string;
  hasBf16?: boolean;
  error?: string;
}

function probe(env: Record<string, string>): Probe {
  const code = `
    const m = await import(${JSON.stringify(indexJs)});
    try {
      m.getBackend();
      const info = m.nativeStatus().tools.info();
      console.log(JSON.stringify({ kernel: info.kernel, note: info.note, bf16: info.bf16,
        hasBf16: m.nativeStatus().tools.bf16 !== null }));
    } catch (e) {
      console.log(JSON.stringify({ error: e.message }));
    }`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
    env: { ...process.env, RL4QE_KERNEL: '', RL4QE_BACKEND: '', ...env },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Probe;
}

test(
  'a CPU without AVX512-VNNI / BF16 falls back with a note; forcing them is refused',
  { skip },
  (t) => {
    const n = loadNative();
    assert.ok(n.tools, n.reason);
    const kernels = n.tools.info().kernels;
    if (!kernels.includes('avx512')) {
      t.skip(`needs an AVX-512 CPU to hide features from (runs ${kernels.join(', ')})`);
      return;
    }
    const noVnni = probe({ RL4QE_HIDE_FEATURES: 'avx512vnni,avx512bf16' });
    assert.equal(noVnni.kernel, 'avx512');
    assert.match(noVnni.note!, /avx512vnni not used: the CPU lacks avx512vnni/);
    assert.equal(noVnni.hasBf16, false);
    assert.match(noVnni.bf16!, /^none: the CPU lacks avx512bf16/);

    const refused = probe({ RL4QE_HIDE_FEATURES: 'avx512vnni', RL4QE_KERNEL: 'avx512vnni' });
    assert.match(refused.error!, /RL4QE_KERNEL names a kernel set this CPU cannot run/);
    assert.match(refused.error!, /'avx512vnni' needs avx512vnni, which this CPU lacks/);
    assert.match(refused.error!, /it runs: avx512, avx2, generic/);

    const noAvx512 = probe({ RL4QE_HIDE_FEATURES: 'avx512bw', RL4QE_KERNEL: 'avx512' });
    assert.match(noAvx512.error!, /'avx512' needs avx512bw/);

    const unknown = probe({ RL4QE_KERNEL: 'avx9000' });
    assert.match(unknown.error!, /kernel set 'avx9000' is unknown/);

    const forced = probe({ RL4QE_KERNEL: 'avx2' });
    assert.equal(forced.kernel, 'avx2');
    assert.match(forced.note!, /forced by RL4QE_KERNEL=avx2/);
  },
);
