// The local engine's decode queue on its own (no model): batches by key in arrival order, at most
// maxBatchSize, aborted and closed requests answered without decoding, and the batch wait that
// lets requests arriving a little later join the same batch.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BatchQueue, type Batchable } from '../../src/generators/index.js';

interface Item extends Batchable {
  id: string;
  done: (how: string) => void;
}

function harness(opts: { maxBatchSize: number; batchWaitMs?: number }) {
  const batches: string[][] = [];
  const q = new BatchQueue<Item>({
    ...opts,
    run: (b) => {
      batches.push(b.map((x) => x.id));
      for (const x of b) x.done('ran');
    },
    drop: (x, why) => x.done(why),
    crash: (x) => x.done('crash'),
  });
  const push = (id: string, key = 'k', signal?: AbortSignal): Promise<string> =>
    new Promise((done) => q.push([{ id, key, signal, done }]));
  return { q, batches, push };
}

describe('BatchQueue', () => {
  it('groups by key in arrival order, at most maxBatchSize per batch', async () => {
    const { q, batches, push } = harness({ maxBatchSize: 2 });
    const all = ['a', 'b', 'c', 'd', 'e'].map((id, i) => push(id, i === 1 ? 'other' : 'k'));
    assert.deepEqual(await Promise.all(all), ['ran', 'ran', 'ran', 'ran', 'ran']);
    assert.deepEqual(batches, [['a', 'c'], ['b'], ['d', 'e']]);
    assert.deepEqual(q.stats(), { batches: 3, sequences: 5 });
  });

  it('aborted requests and a closed queue answer without decoding', async () => {
    const { q, batches, push } = harness({ maxBatchSize: 4 });
    const ac = new AbortController();
    const a = push('a', 'k', ac.signal);
    const b = push('b');
    ac.abort();
    assert.deepEqual(await Promise.all([a, b]), ['aborted', 'ran']);
    q.close();
    assert.equal(await push('c'), 'closed');
    assert.deepEqual(batches, [['b']]);
  });

  it('without a batch wait a later request decodes in a batch of its own; with one it joins', async () => {
    const later = async (push: (id: string) => Promise<string>): Promise<void> => {
      const a = push('a');
      await new Promise((r) => setTimeout(r, 30));
      await Promise.all([a, push('b')]);
    };
    const none = harness({ maxBatchSize: 2 });
    await later(none.push);
    assert.deepEqual(none.batches, [['a'], ['b']]);
    // A full batch ends the wait at once: this does not take the 60 s.
    const wait = harness({ maxBatchSize: 2, batchWaitMs: 60_000 });
    await later(wait.push);
    assert.deepEqual(wait.batches, [['a', 'b']]);
  });
});
