import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  PAPER_GENERATOR_SYSTEM,
  PAPER_REFINER_TEMPLATE,
  extractRefinement,
  fillTemplate,
  generatorPrompt,
  refinerPrompt,
} from './prompts.js';

test('refiner: the paper template and chat variants carry the query', () => {
  const q = 'How do I sort {a} df by column?';
  const p = refinerPrompt(q);
  assert.equal(p.kind, 'completion');
  assert.ok(p.kind === 'completion' && p.prompt.endsWith(`Original query: ${q}\nEnhanced query:`));
  assert.ok(PAPER_REFINER_TEMPLATE.startsWith('You are a query enhancement assistant.'));
  const c = refinerPrompt(q, { format: 'chat' });
  assert.ok(c.kind === 'chat' && c.messages[0]!.role === 'system' && c.messages[1]!.content === q);
  const pc = refinerPrompt(q, { format: 'paper-chat' });
  assert.ok(pc.kind === 'chat' && pc.messages.length === 1 && pc.messages[0]!.content.includes(q));
  const d = refinerPrompt(q, { format: 'chat-ds1000' });
  assert.ok(d.kind === 'chat' && /variable/.test(d.messages[0]!.content));
  assert.equal(fillTemplate('{query}-{x}', { query: 'a' }), 'a-{x}');
});

test('extractRefinement takes the text after the last marker', () => {
  assert.equal(extractRefinement('...Original query: q\nEnhanced query:  better q \n'), 'better q');
  assert.equal(extractRefinement('Enhanced query: a Enhanced query: b'), 'b');
  assert.equal(extractRefinement('  just text '), 'just text');
});

test('generator: what it sees, per input mode and format', () => {
  const original = 'Problem...\nA:\n<code>\nimport numpy as np\n</code>\nBEGIN SOLUTION\n<code>\n';
  const refined = 'Compute the mean of a.';
  const paper = generatorPrompt({ original, refined });
  assert.ok(paper.kind === 'chat');
  assert.equal(paper.messages[0]!.content, PAPER_GENERATOR_SYSTEM);
  assert.equal(paper.messages[1]!.content, refined);
  const both = generatorPrompt({ original, refined, input: 'original+refined', format: 'chat' });
  assert.ok(both.kind === 'chat');
  assert.ok(
    both.messages[1]!.content.startsWith('Problem...') &&
      both.messages[1]!.content.includes(refined),
  );
  const base = generatorPrompt({ original, refined, input: 'original', format: 'chat' });
  assert.ok(base.kind === 'chat' && base.messages[1]!.content === original);
  const comp = generatorPrompt({
    original,
    refined,
    input: 'original+refined',
    format: 'ds1000-completion',
  });
  assert.ok(
    comp.kind === 'completion' && comp.prompt.endsWith(original) && comp.prompt.includes(refined),
  );
  assert.ok(comp.kind === 'completion' && comp.stop.includes('</code>'));
  const r = generatorPrompt({ original, refined, format: 'ds1000-completion' });
  assert.ok(
    r.kind === 'completion' && r.prompt.endsWith('<code>\n') && r.prompt.startsWith(refined),
  );
});
