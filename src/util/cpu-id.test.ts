import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cpuId, cpuLabel, microarchOf } from './cpu-id.js';

test('the microarchitecture comes from vendor, family and model, and is null when unknown', () => {
  assert.equal(microarchOf('AuthenticAMD', 26, 2), 'Zen 5');
  assert.equal(microarchOf('AuthenticAMD', 25, 0x11), 'Zen 4'); // EPYC 9004 (Genoa)
  assert.equal(microarchOf('AuthenticAMD', 25, 0x01), 'Zen 3'); // EPYC 7003 (Milan)
  assert.equal(microarchOf('GenuineIntel', 6, 0x8f), 'Sapphire Rapids');
  assert.equal(microarchOf('GenuineIntel', 6, 0x01), null);
  assert.equal(microarchOf('HygonGenuine', 24, 1), null);
  assert.equal(microarchOf(null, null, null), null);
});

test('the label names the model string and, on Linux, family and model numbers', () => {
  const id = cpuId();
  assert.ok(cpuLabel(id).startsWith(id.model));
  if (id.family !== null) assert.match(cpuLabel(id), new RegExp(`family ${id.family} model`));
  assert.equal(
    cpuLabel({
      model: 'X',
      vendor: 'AuthenticAMD',
      family: 26,
      modelNumber: 2,
      microarch: 'Zen 5',
    }),
    'X (AuthenticAMD family 26 model 2: Zen 5)',
  );
  assert.equal(
    cpuLabel({ model: 'X', vendor: null, family: null, modelNumber: null, microarch: null }),
    'X',
  );
});
