import { test } from 'node:test';
import assert from 'node:assert/strict';
import { referenceBackend, withFallback, type Backend } from './index.js';

test('withFallback fills missing kernels from reference and keeps `this` of class methods', () => {
  class Partial {
    readonly name = 'native' as const;
    calls = 0;
    supports(): boolean {
      return true;
    }
    unary(...args: Parameters<typeof referenceBackend.unary>): void {
      this.calls++;
      referenceBackend.unary(...args);
    }
  }
  const p = new Partial();
  const full = withFallback(p as unknown as Backend);
  assert.equal(full.name, 'native');
  const x = new Float32Array([1, 4]);
  const y = new Float32Array(2);
  full.unary('sqrt', x, y);
  assert.equal(p.calls, 1, 'the backend’s own kernel ran, with its `this`');
  assert.deepEqual(Array.from(y), [1, 2]);
  assert.equal(full.softmax, referenceBackend.softmax, 'a missing kernel is the reference one');
  assert.ok(Number.isNaN(full.liveBytes()), 'no counter: NaN, not the reference counter');
});
