// The offline test model for model-backed tests. Missing means FAIL with the command, never skip.
import { existsSync } from 'node:fs';
import assert from 'node:assert/strict';
import { defaultGgufPath } from '../../src/generators/index.js';

export function requireTestModel(): string {
  const p = defaultGgufPath();
  assert.ok(existsSync(p), `test model missing: ${p}\n  run: node scripts/fetch-test-models.mjs`);
  return p;
}
