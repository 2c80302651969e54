import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import os from 'node:os';
import path from 'node:path';
import { loadDs1000, loadDs1000FromHub } from './ds1000.js';
import { setHubDatasetFetcher } from './hub.js';
import { FormatError, NetworkError, NotFoundError } from '../util/errors.js';

const row = (id: number, over: Record<string, unknown> = {}): Record<string, unknown> => ({
  prompt: `p${id}`,
  reference_code: `r${id}`,
  code_context: 'def test_execution(solution):\n    pass\n',
  metadata: {
    problem_id: id,
    library_problem_id: id,
    library: 'Numpy',
    test_case_cnt: 1,
    perturbation_type: 'Origin',
    perturbation_origin_id: id,
  },
  ...over,
});

function tmp(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'rl4qe-data-'));
}

test('the shared DS-1000 file: 1000 rows, ids 0..999, documented counts', async () => {
  const ps = await loadDs1000();
  assert.equal(ps.length, 1000);
  ps.forEach((p, i) => assert.equal(p.metadata.problemId, i));
  const byLib = new Map<string, number>();
  for (const p of ps) byLib.set(p.metadata.library, (byLib.get(p.metadata.library) ?? 0) + 1);
  assert.deepEqual(Object.fromEntries(byLib), {
    Pandas: 291,
    Numpy: 220,
    Matplotlib: 155,
    Tensorflow: 45,
    Scipy: 106,
    Sklearn: 115,
    Pytorch: 68,
  });
  assert.equal(
    ps.reduce((s, p) => s + p.metadata.testCaseCnt, 0),
    1615,
  );
  assert.equal(ps.filter((p) => p.metadata.perturbationType === 'Origin').length, 452);
  assert.ok(ps[0]!.prompt.includes('BEGIN SOLUTION'));
  assert.ok(ps[0]!.codeContext.includes('def test_execution(solution'));
  assert.ok(ps[0]!.referenceCode.includes('df.iloc[List]'));
});

test('plain and gzipped local files load the same rows', async () => {
  const d = tmp();
  try {
    const text = [row(0), row(1)].map((r) => JSON.stringify(r)).join('\n') + '\n\n';
    writeFileSync(path.join(d, 'a.jsonl'), text);
    writeFileSync(path.join(d, 'a.jsonl.gz'), gzipSync(text));
    writeFileSync(path.join(d, 'noext'), gzipSync(text)); // sniffed by magic bytes
    const a = await loadDs1000({ path: path.join(d, 'a.jsonl') });
    const b = await loadDs1000({ path: path.join(d, 'a.jsonl.gz') });
    const c = await loadDs1000({ path: path.join(d, 'noext') });
    assert.equal(a.length, 2);
    assert.deepEqual(a, b);
    assert.deepEqual(a, c);
    assert.equal(a[1]!.metadata.libraryProblemId, 1);
    assert.equal(a[1]!.referenceCode, 'r1');
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

async function expectFormatError(lines: string[], re: RegExp): Promise<void> {
  const d = tmp();
  const f = path.join(d, 'bad.jsonl');
  try {
    writeFileSync(f, lines.join('\n'));
    await assert.rejects(loadDs1000({ path: f }), (e: unknown) => {
      assert.ok(e instanceof FormatError, String(e));
      assert.ok(e.message.includes(f), e.message);
      assert.match(e.message, re);
      return true;
    });
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
}

test('malformed lines name file, line and field', async () => {
  const ok = JSON.stringify(row(0));
  await expectFormatError([ok, '{not json'], /bad\.jsonl:2\b/);
  const noRef = row(1);
  delete noRef.reference_code;
  await expectFormatError([ok, JSON.stringify(noRef)], /:2 field reference_code/);
  const badMeta = row(1);
  (badMeta.metadata as Record<string, unknown>).library = undefined;
  await expectFormatError([ok, '', JSON.stringify(badMeta)], /:3 field metadata\.library/);
  const badType = row(1);
  (badType.metadata as Record<string, unknown>).perturbation_type = 'Other';
  await expectFormatError([ok, JSON.stringify(badType)], /field metadata\.perturbation_type/);
  const strId = row(1);
  (strId.metadata as Record<string, unknown>).test_case_cnt = '2';
  await expectFormatError([ok, JSON.stringify(strId)], /field metadata\.test_case_cnt/);
  await expectFormatError([ok, ok], /duplicate problem_id 0.*\n?.*line 1/s);
});

test('a missing file is NotFoundError; the Hub without a client is NetworkError', async () => {
  await assert.rejects(loadDs1000({ path: '/nonexistent/x.jsonl' }), NotFoundError);
  setHubDatasetFetcher(undefined);
  await assert.rejects(loadDs1000FromHub(), (e: unknown) => {
    assert.ok(e instanceof NetworkError);
    assert.match(e.message, /xlangai\/DS-1000/);
    return true;
  });
  setHubDatasetFetcher(async () => {
    throw new Error('ENOTFOUND huggingface.co');
  });
  await assert.rejects(loadDs1000FromHub(), NetworkError);
  setHubDatasetFetcher(undefined);
});
