import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from './rng.js';

test('Rng is reproducible from a seed and from a saved state', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const xs = Array.from({ length: 5 }, () => a.nextU32());
  assert.deepEqual(
    xs,
    Array.from({ length: 5 }, () => b.nextU32()),
  );
  const state = a.getState();
  const next = a.next();
  assert.equal(new Rng(state).next(), next);
  assert.notDeepEqual(
    Array.from({ length: 5 }, () => new Rng(1).nextU32()),
    Array.from({ length: 5 }, () => new Rng(2).nextU32()),
  );
});

test('Rng.next is uniform on [0,1) and normal() has unit variance', () => {
  const r = new Rng(7);
  let sum = 0;
  let sq = 0;
  const n = 200_000;
  for (let i = 0; i < n; i++) {
    const u = r.next();
    assert.ok(u >= 0 && u < 1);
    sum += u;
    const z = r.normal();
    sq += z * z;
  }
  assert.ok(Math.abs(sum / n - 0.5) < 0.005);
  assert.ok(Math.abs(sq / n - 1) < 0.02);
});
