import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  PROMPT_CANDIDATES,
  chooseCandidate,
  refinerRequest,
  type CandidateScore,
} from './prompt-search.js';
import {
  PAPER_REFINER_TEMPLATE,
  REFINER_SYSTEM,
  REFINER_SYSTEM_DS1000,
  fillTemplate,
} from '../data/prompts.js';

const params = { temperature: 0, maxTokens: 8 };

test('candidates: the paper instruction, the DS-1000-aware one and three more, distinct', () => {
  assert.ok(PROMPT_CANDIDATES.length >= 4);
  assert.equal(PROMPT_CANDIDATES[0]!.instruction, REFINER_SYSTEM);
  assert.ok(PROMPT_CANDIDATES.some((c) => c.instruction === REFINER_SYSTEM_DS1000));
  assert.equal(new Set(PROMPT_CANDIDATES.map((c) => c.instruction)).size, PROMPT_CANDIDATES.length);
});

test("refiner requests: the paper candidate reproduces the format's own prompt (one cache entry)", () => {
  const q = 'sort a list';
  const paper = refinerRequest('a', q, { format: 'paper', instruction: REFINER_SYSTEM, params });
  assert.equal(paper.prompt, fillTemplate(PAPER_REFINER_TEMPLATE, { query: q }));
  assert.deepEqual(refinerRequest('b', q, { format: 'paper', params }).prompt, paper.prompt);
  const chat = refinerRequest('c', q, { format: 'chat', instruction: 'Be brief.', params });
  assert.deepEqual(chat.messages, [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: q },
  ]);
  const plain = refinerRequest('d', q, { format: 'chat', params });
  assert.equal(plain.messages![0]!.content, REFINER_SYSTEM);
  const pc = refinerRequest('e', q, { format: 'paper-chat', instruction: 'Be brief.', params });
  assert.equal(pc.messages![0]!.content, 'Be brief.\nOriginal query: sort a list\nEnhanced query:');
});

test('choice: highest score, then the CSS tie-break, then the earlier; null scores lose', () => {
  const c = (
    name: string,
    score: number | null,
    tiebreak: number | null = null,
  ): CandidateScore => ({
    name,
    instruction: name,
    score,
    tiebreak,
    n: 1,
    failures: 0,
  });
  assert.equal(chooseCandidate([c('a', 0.1), c('b', 0.3), c('c', 0.2)])!.name, 'b');
  assert.equal(chooseCandidate([c('a', 0, 0.1), c('b', 0, 0.4), c('c', 0, 0.2)])!.name, 'b');
  assert.equal(chooseCandidate([c('a', 0.5), c('b', 0.5)])!.name, 'a');
  assert.equal(chooseCandidate([c('a', null), c('b', 0)])!.name, 'b');
  assert.equal(chooseCandidate([c('a', null), c('b', null)])!.name, 'a');
});
