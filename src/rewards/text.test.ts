// Parity of the text rewards with the Python reference packages (nltk, rouge, difflib and the
// RL4QE authors' code) on the >= 1,000 pairs of test/fixtures/rewards/text_pairs.jsonl.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../data/paths.js';
import { loadDs1000, type Ds1000Problem } from '../data/ds1000.js';
import {
  bleu4,
  bleu4Tokens,
  codeMetrics,
  f1,
  overlap,
  prepareText,
  rougeL,
  rougeLF,
  textMetrics,
} from './text.js';
import { codeTokens, pySplit, pyStrip } from './tokenize.js';
import { UnsupportedError } from '../util/errors.js';

const REGEN =
  'regenerate with: ~/.cache/rl4qe/oracle/bin/python scripts/fixtures_rewards.py (see its header)';
const TOL = 1e-9;

interface Row {
  id: number;
  kind: string;
  hyp?: string;
  ref?: string;
  a?: [number, 'prompt' | 'reference_code'];
  b?: [number, 'prompt' | 'reference_code'];
  bleu: number;
  bleu_nosmooth: number;
  rouge_l: number | null;
  f1: number;
  overlap: number;
  css: number;
  code_precision: number;
  code_recall: number;
  code_f1: number;
}

function field(p: Ds1000Problem, f: 'prompt' | 'reference_code'): string {
  return f === 'prompt' ? p.prompt : p.referenceCode;
}

async function loadRows(): Promise<{ row: Row; hyp: string; ref: string }[]> {
  const file = path.join(repoRoot(), 'test', 'fixtures', 'rewards', 'text_pairs.jsonl');
  const rows = readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Row);
  const ds = await loadDs1000();
  return rows.map((row) => {
    if (row.kind === 'ds1000') {
      return { row, hyp: field(ds[row.a![0]]!, row.a![1]), ref: field(ds[row.b![0]]!, row.b![1]) };
    }
    return { row, hyp: row.hyp!, ref: row.ref! };
  });
}

function close(
  name: string,
  id: number,
  got: number,
  want: number,
  hyp: string,
  ref: string,
): void {
  if (!(Math.abs(got - want) <= TOL)) {
    assert.fail(
      `${name} pair ${id}: got ${got}, Python ${want}\n  hyp=${JSON.stringify(hyp.slice(0, 200))}\n  ref=${JSON.stringify(ref.slice(0, 200))}\n  ${REGEN}`,
    );
  }
}

test("text rewards equal nltk / rouge / difflib / the authors' code on >= 1,000 pairs (1e-9)", async () => {
  const rows = await loadRows();
  assert.ok(rows.length >= 1000, `only ${rows.length} fixture pairs; ${REGEN}`);
  const kinds = new Set(rows.map((r) => r.row.kind));
  for (const k of ['edge', 'random', 'long', 'ds1000']) assert.ok(kinds.has(k), `no ${k} pairs`);
  let rougeErrors = 0;
  for (const { row, hyp, ref } of rows) {
    close('bleu', row.id, bleu4(hyp, ref), row.bleu, hyp, ref);
    close(
      'bleu_nosmooth',
      row.id,
      bleu4(hyp, ref, { smoothing: 'none' }),
      row.bleu_nosmooth,
      hyp,
      ref,
    );
    if (row.rouge_l === null) {
      rougeErrors++;
      assert.equal(rougeL(hyp, ref), 0, `pair ${row.id}: the package raised; rl4qe defines 0`);
    } else close('rouge_l', row.id, rougeL(hyp, ref), row.rouge_l, hyp, ref);
    close('f1', row.id, f1(hyp, ref), row.f1, hyp, ref);
    close('overlap', row.id, overlap(hyp, ref), row.overlap, hyp, ref);
    const cm = codeMetrics(hyp, ref);
    close('css', row.id, cm.css, row.css, hyp, ref);
    close('code_precision', row.id, cm.precision, row.code_precision, hyp, ref);
    close('code_recall', row.id, cm.recall, row.code_recall, hyp, ref);
    close('code_f1', row.id, cm.f1, row.code_f1, hyp, ref);
  }
  assert.ok(rougeErrors > 0 && rougeErrors < 60, `${rougeErrors} rouge ValueError pairs`);
});

test('Python whitespace and the code-token regex on edge characters', () => {
  assert.deepEqual(pySplit('  a\u00a0b\x1cc\x85d\ufeffe\u200bf  '), [
    'a',
    'b',
    'c',
    'd\ufeffe\u200bf',
  ]);
  assert.deepEqual(pySplit(''), []);
  assert.deepEqual(pySplit(' \t\n'), []);
  assert.equal(pyStrip('\x1f a \u3000'), 'a');
  assert.deepEqual(codeTokens('x_1 = df.a[0] + 3.14 ** é2 ²'), [
    'x_1',
    '=',
    'df',
    '.',
    'a',
    '[',
    '0',
    ']',
    '+',
    '3.14',
    '*',
    '*',
    '2',
  ]);
});

test('code tokeniser option changes tokens, not definitions', () => {
  const a = 'result=df.groupby("a").sum()';
  const b = 'result = df.groupby("a").sum()';
  assert.ok(bleu4(a, b) < 0.5); // whitespace tokens differ
  assert.equal(bleu4(a, b, { tokenizer: 'code' }), 1);
  assert.equal(f1(a, b, { tokenizer: 'code' }), 1);
  assert.equal(overlap(a, b, { tokenizer: 'code' }), 1);
  assert.equal(rougeLF(a, b, { tokenizer: 'code' }), 1);
  assert.equal(rougeLF('', b, { tokenizer: 'code' }), 0);
});

test('textMetrics (shared tokens) equals the single-metric functions', async () => {
  const rows = await loadRows();
  for (const { hyp, ref } of rows.slice(0, 300)) {
    const m = textMetrics(hyp, prepareText(ref));
    assert.equal(m.bleu, bleu4(hyp, ref));
    assert.equal(m.rouge_l, rougeL(hyp, ref));
    assert.equal(m.f1, f1(hyp, ref));
    assert.equal(m.overlap, overlap(hyp, ref));
    assert.equal(m.css, codeMetrics(hyp, ref).css);
  }
});

// A plain BLEU with string n-gram keys, to check the numeric-key fast path and the string-key
// path for vocabularies too large for exact numeric keys (vocab^4 >= 2^53).
function bleuPlain(h: string[], r: string[]): number {
  const nums: number[] = [];
  const dens: number[] = [];
  for (let n = 1; n <= 4; n++) {
    const count = (s: string[]): Map<string, number> => {
      const m = new Map<string, number>();
      for (let i = 0; i + n <= s.length; i++) {
        const k = s.slice(i, i + n).join('\u0000');
        m.set(k, (m.get(k) ?? 0) + 1);
      }
      return m;
    };
    const hc = count(h);
    const rc = count(r);
    let num = 0;
    let tot = 0;
    for (const [k, c] of hc) {
      num += Math.min(c, rc.get(k) ?? 0);
      tot += c;
    }
    nums.push(num);
    dens.push(Math.max(1, tot));
  }
  if (nums[0] === 0) return 0;
  const bp = h.length > r.length ? 1 : Math.exp(1 - r.length / h.length);
  let s = 0;
  for (let i = 0; i < 4; i++)
    s += 0.25 * Math.log(nums[i] === 0 ? 0.1 / dens[i]! : nums[i]! / dens[i]!);
  return bp * Math.exp(s);
}

test('BLEU n-gram keys: small and very large vocabularies agree with a plain implementation', () => {
  for (const vocab of [5, 300, 20000]) {
    const words = Array.from({ length: vocab }, (_, i) => `w${i}`);
    let x = 12345;
    const rnd = (): number => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      return x / 2 ** 32;
    };
    const ref = Array.from(
      { length: Math.min(3 * vocab, 6000) },
      () => words[Math.floor(rnd() * vocab)]!,
    );
    const hyp = ref.map((w) => (rnd() < 0.2 ? words[Math.floor(rnd() * vocab)]! : w));
    const got = bleu4Tokens(hyp, ref);
    assert.ok(Math.abs(got - bleuPlain(hyp, ref)) < 1e-12, `vocab ${vocab}: ${got}`);
  }
});

test('ROUGE-L refuses a sentence pair beyond the LCS table bound with a clear error', () => {
  const long = Array.from({ length: 17000 }, (_, i) => `w${i % 50}`).join(' ');
  assert.throws(() => rougeL(long, long), UnsupportedError);
});
