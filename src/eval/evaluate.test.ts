import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadMbpp } from '../data/mbpp.js';
import { mbppOfficialManifest } from './evaluate.js';

test('MBPP: the official split as a manifest (500 test, 90 validation, 374 train)', async () => {
  const m = mbppOfficialManifest(await loadMbpp());
  assert.deepEqual(m.sizes, { train: 374, validation: 90, test: 500 });
  assert.equal(m.ids.test[0], 'mbpp/11');
  assert.equal(m.ids.validation[0], 'mbpp/511');
  assert.ok(![...m.ids.train, ...m.ids.validation, ...m.ids.test].includes('mbpp/5'));
});
