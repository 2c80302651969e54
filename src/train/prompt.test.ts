import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TRUNCATION_MARKER, fitQuery, type RenderedPrompt } from './prompt.js';

// One token per character: the fitted lengths can be computed by hand.
const HEAD = 'Rewrite: ';
const CUE = '\nEnhanced query:';
const render = (q: string): RenderedPrompt => {
  const text = HEAD + q + CUE;
  return { ids: Array.from(text, (c) => c.charCodeAt(0)), text };
};
const fixed = HEAD.length + CUE.length;

test('fitQuery: a prompt that fits is the query as it is', () => {
  const p = fitQuery('sort a list', render, { maxPromptTokens: 100, overlong: 'truncate-middle' })!;
  assert.equal(p.truncated, false);
  assert.equal(p.query, 'sort a list');
  assert.equal(p.text, `${HEAD}sort a list${CUE}`);
});

test('fitQuery: an over-long query loses its middle, keeps head, tail and the cue, and is maximal', () => {
  const q = Array.from({ length: 200 }, (_, i) => String.fromCharCode(97 + (i % 26))).join('');
  const max = 80;
  const p = fitQuery(q, render, { maxPromptTokens: max, overlong: 'truncate-middle' })!;
  assert.equal(p.truncated, true);
  assert.ok(p.ids.length <= max);
  assert.ok(p.text.startsWith(HEAD) && p.text.endsWith(CUE), 'the instruction and cue are kept');
  // Characters kept: everything the budget allows beside the template and the marker.
  const kept = max - fixed - TRUNCATION_MARKER.length;
  const head = Math.ceil(kept / 2);
  assert.equal(p.query, q.slice(0, head) + TRUNCATION_MARKER + q.slice(q.length - (kept - head)));
  assert.equal(p.text, HEAD + p.query + CUE);
  assert.equal(p.ids.length, max);
});

test("fitQuery: 'skip' gives up on an over-long prompt; so does a template longer than the budget", () => {
  const q = 'x'.repeat(100);
  assert.equal(fitQuery(q, render, { maxPromptTokens: 50, overlong: 'skip' }), undefined);
  assert.ok(fitQuery('x', render, { maxPromptTokens: 50, overlong: 'skip' }));
  assert.equal(
    fitQuery(q, render, { maxPromptTokens: fixed - 1, overlong: 'truncate-middle' }),
    undefined,
  );
});
