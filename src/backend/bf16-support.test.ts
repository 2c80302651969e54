// What the bf16 compute mode would use, as `rl4qe doctor` says it: the units and why on a CPU with
// AVX512-BF16, a fall-back line naming what is missing otherwise (the reference backend in
// process; a CPU that hides avx512bf16 in a child process).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { bf16Support, nativeStatus, setBackend } from './index.js';
import { backendDoctorSection, bf16ComputeLine } from './doctor.js';

test('bf16Support on the reference backend: unavailable, the reason names the backend', () => {
  setBackend('reference');
  const s = bf16Support();
  assert.equal(s.available, false);
  assert.match(s.reason, /active backend is reference/);
  assert.match(
    bf16ComputeLine(),
    /^unavailable, --compute bf16 falls back to fp32: the active backend is reference/,
  );
});

test(
  'bf16Support on native agrees with the addon and doctor shows it',
  { skip: nativeStatus().backend ? false : 'no native addon' },
  () => {
    setBackend('native');
    const s = bf16Support();
    assert.equal(s.available, nativeStatus().tools?.bf16 !== null);
    const rows = new Map(backendDoctorSection().rows);
    assert.equal(rows.get('bf16 compute'), bf16ComputeLine());
    if (s.available) {
      assert.match(
        rows.get('bf16 compute') ?? '',
        /^AVX512-BF16 vdpbf16ps, fp32 accumulation \(the CPU has avx512bf16/,
      );
    } else {
      assert.match(
        rows.get('bf16 compute') ?? '',
        /^unavailable, --compute bf16 falls back to fp32/,
      );
    }
  },
);

test(
  'doctor on a CPU without avx512bf16 (hidden): the fall-back line names the missing feature',
  { skip: nativeStatus().backend ? false : 'no native addon' },
  () => {
    const code = `
    import { backendDoctorSection } from './dist/src/backend/doctor.js';
    console.log(new Map(backendDoctorSection().rows).get('bf16 compute'));
  `;
    const p = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
      env: { ...process.env, RL4QE_HIDE_FEATURES: 'avx512bf16' },
      encoding: 'utf8',
    });
    assert.equal(p.status, 0, p.stderr);
    assert.equal(
      p.stdout.trim(),
      'unavailable, --compute bf16 falls back to fp32: the CPU lacks avx512bf16',
    );
  },
);
