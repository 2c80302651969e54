import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../util/rng.js';
import { backoffDelayMs, defaultRetryPolicy, parseRetryAfter } from './retry.js';
import { Limiter } from './limiter.js';
import { Budget, priceFor } from './cost.js';

describe('retry timing', () => {
  it('Retry-After: delta seconds and HTTP dates', () => {
    const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');
    assert.equal(parseRetryAfter('120', now), 120_000);
    assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:30 GMT', now), 30_000);
    assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:27:00 GMT', now), 0, 'a past date means now');
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter(null, now), undefined);
  });

  it('full-jitter backoff stays under the doubling ceiling and never under Retry-After', () => {
    const rng = new Rng(1);
    const p = { ...defaultRetryPolicy, baseDelayMs: 100, maxDelayMs: 1000 };
    for (let retry = 1; retry <= 6; retry++) {
      for (let i = 0; i < 50; i++) {
        const d = backoffDelayMs(p, retry, rng);
        assert.ok(d >= 0 && d <= Math.min(1000, 100 * 2 ** (retry - 1)));
      }
    }
    assert.ok(backoffDelayMs(p, 1, rng, 5000) >= 5000);
  });
});

describe('Limiter', () => {
  it('never runs more than the limit at once and runs everything', async () => {
    const lim = new Limiter(3);
    let now = 0;
    let peak = 0;
    const done = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        lim.run(async () => {
          now++;
          peak = Math.max(peak, now);
          await new Promise((r) => setTimeout(r, 1 + (i % 3)));
          now--;
          return i;
        }),
      ),
    );
    assert.equal(peak, 3);
    assert.deepEqual(
      done,
      Array.from({ length: 20 }, (_, i) => i),
    );
    assert.equal(lim.running, 0);
  });
});

describe('prices and budget', () => {
  it('exact keys win over the longest matching prefix', () => {
    const t = {
      'gpt-4o*': { inputPerMTok: 1, outputPerMTok: 1 },
      'gpt-*': { inputPerMTok: 2, outputPerMTok: 2 },
      'gpt-4o-mini': { inputPerMTok: 3, outputPerMTok: 3 },
    };
    assert.equal(priceFor(t, 'gpt-4o-mini')!.inputPerMTok, 3);
    assert.equal(priceFor(t, 'gpt-4o-2024')!.inputPerMTok, 1);
    assert.equal(priceFor(t, 'gpt-3.5')!.inputPerMTok, 2);
    assert.equal(priceFor(t, 'claude'), undefined);
  });

  it('reservations count against the cap; once refused, the budget stays closed', () => {
    const b = new Budget(1);
    assert.ok(b.reserve(0.6));
    assert.ok(!b.reserve(0.6), 'in-flight reservations count');
    assert.ok(b.exhausted);
    b.settle(0.6, 0.1);
    assert.ok(!b.reserve(0.01), 'closed for good: the run stops cleanly');
    assert.equal(b.spentUsd, 0.1);
  });
});
