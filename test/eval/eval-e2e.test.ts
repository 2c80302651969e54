// `rl4qe eval` end to end on the real SmolLM2 test model (quantised weights) as refiner AND as
// generator, on 3 HumanEval problems with tiny token budgets: every arm (original, untrained, a
// run directory's best adapter, prompt search), eval.json's shape, the Markdown and HTML outputs,
// a second run that calls no model (cache), and the refusals that must come before any model call
// (split overlap, base-model mismatch, run version). Execution: one small run through the sandbox
// when the exec venv exists (skipped with the reason otherwise).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { evalCommand, type EvalFlags } from '../../src/cli/commands/eval.js';
import { EvalRefusedError, evaluate, type EvalResult } from '../../src/eval/index.js';
import { loadTasks, makeSplit, writeSplitManifest } from '../../src/data/index.js';
import { modelDigest } from '../../src/train/run-dir.js';
import { execVenvPython } from '../../src/sandbox/index.js';
import { requireTestModel } from '../generators/test-model.js';
import { cachePaths } from '../../src/util/paths.js';
import { startFaultServer } from '../generators/fault-server.js';

const SMOL = path.join(cachePaths.testModels(), 'smollm2-135m-instruct-q4_1.gguf');
const ADAPTER = 'test/fixtures/generators/local/adapter-smollm2';

async function writeRun(dir: string, o: { seed: number; digest?: string }): Promise<void> {
  mkdirSync(path.join(dir, 'checkpoints'), { recursive: true });
  writeFileSync(
    path.join(dir, 'run.json'),
    JSON.stringify({
      version: 1,
      rl4qe: '0.1.0',
      createdAt: '2026-12-04T00:00:00Z',
      base: {
        model: SMOL,
        digest: o.digest ?? modelDigest(SMOL),
        architecture: 'llama',
        hiddenSize: 576,
        numLayers: 30,
      },
      adapter: 'lora',
    }),
  );
  writeFileSync(
    path.join(dir, 'config.json'),
    JSON.stringify({
      refiner: { format: 'chat' },
      generator: { input: 'refined', format: 'chat' },
    }),
  );
  const tasks = await loadTasks({ dataset: 'humaneval' });
  await writeSplitManifest(
    path.join(dir, 'split.json'),
    makeSplit(tasks, { seed: o.seed, dataset: 'humaneval' }),
  );
  cpSync(ADAPTER, path.join(dir, 'checkpoints', 'step-000001', 'adapter'), { recursive: true });
  writeFileSync(path.join(dir, 'checkpoints', 'latest'), 'step-000001\n');
  writeFileSync(path.join(dir, 'checkpoints', 'best'), 'step-000001\n');
}

describe('rl4qe eval end to end (SmolLM2 refiner and generator, 3 HumanEval problems)', () => {
  let d: string;
  let runA: string;
  const flags = (over: Partial<EvalFlags> = {}): EvalFlags => ({
    refinerModel: SMOL,
    backend: 'local',
    model: SMOL,
    refinerAdapter: [runA],
    dataset: 'humaneval',
    split: 'test',
    limit: '3',
    maxTokens: '12',
    refinerMaxTokens: '12',
    searchSize: '1',
    exec: 'off',
    checkpoint: 'best',
    cache: true,
    cacheFile: path.join(d, 'cache.sqlite'),
    out: path.join(d, 'out'),
    quiet: true,
    ...over,
  });

  before(async () => {
    requireTestModel();
    assert.ok(
      existsSync(SMOL),
      `test model missing: ${SMOL}\n  run: node scripts/fetch-test-models.mjs`,
    );
    d = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-eval-e2e-'));
    runA = path.join(d, 'run-a');
    await writeRun(runA, { seed: 0 });
  });
  after(() => rmSync(d, { recursive: true, force: true }));

  let first: EvalResult;

  it('evaluates every arm and writes eval.json, eval.md and an offline report.html', async () => {
    let stdout = '';
    const { result, outDir } = await evalCommand(flags(), {
      stdout: (s) => (stdout += s),
      stderr: () => {},
    });
    first = result;
    assert.equal(result.version, 1);
    assert.deepEqual(
      result.arms.map((a) => a.name),
      ['original', 'untrained', 'adapter:run-a', 'prompt-search'],
    );
    // The run's split and prompt settings were used, and its guards ran.
    assert.match(result.settings.splitSource, /run-a\/split\.json$/);
    assert.equal(result.settings.generator.input, 'refined');
    assert.equal(result.settings.generator.format, 'chat');
    assert.equal(result.arms[1]!.format, 'chat');
    const ad = result.arms[2]!.adapter!;
    assert.equal(ad.checkpoint?.name, 'step-000001');
    assert.equal(ad.base.via, 'run-digest');
    assert.equal(ad.overlap.checked, true);
    assert.equal(ad.overlap.trainOverlap, 0);
    assert.equal(result.settings.exec, false);
    assert.equal(result.settings.tasks, 3);
    assert.equal(result.tasks.length, 3);
    assert.equal(result.samples.length, 12); // 4 arms × 3 problems × 1 sample
    for (const s of result.samples) {
      if (s.arm === 'original') assert.equal(s.rewrite, null);
      else assert.equal(typeof s.rewrite, 'string');
      assert.equal(s.outcome, 'not_run');
      assert.equal(typeof s.code, 'string');
      for (const m of ['bleu', 'rouge_l', 'f1', 'overlap', 'css'])
        assert.equal(typeof s.components[m], 'number', `${s.arm} ${s.task} ${m}`);
    }
    assert.equal(result.summaries.length, 4);
    assert.deepEqual(Object.keys(result.summaries[0]!.metrics), [
      'bleu',
      'rouge_l',
      'f1',
      'overlap',
      'css',
    ]);
    assert.equal(result.comparisons.length, 3);
    for (const c of result.comparisons) {
      assert.equal(c.base, 'original');
      assert.equal(c.mcnemar, null);
      for (const m of c.metrics) {
        assert.equal(m.n, 3);
        assert.ok(
          m.diffCi !== null && m.diffCi.lo <= m.diff! && m.diff! <= m.diffCi.hi,
          JSON.stringify(m),
        );
        assert.equal(m.wtl.wins + m.wtl.ties + m.wtl.losses, 3);
      }
    }
    assert.equal(result.settings.bootstrap.resamples, 2000);
    // Prompt search: chosen on the training split only.
    const ps = result.promptSearch!;
    assert.equal(ps.candidates.length, 5);
    assert.equal(ps.problems.length, 1);
    const split = JSON.parse(readFileSync(path.join(runA, 'split.json'), 'utf8')) as {
      ids: { train: string[] };
    };
    assert.ok(split.ids.train.includes(ps.problems[0]!));
    assert.ok(!result.tasks.some((t) => ps.problems.includes(t.id)));
    assert.equal(
      result.arms[3]!.instruction,
      ps.candidates.find((c) => c.name === ps.chosen)!.instruction,
    );
    assert.ok(result.calls.generator.backend > 0);
    assert.ok(result.calls.refiner.backend > 0);
    // Outputs.
    const json = JSON.parse(readFileSync(path.join(outDir, 'eval.json'), 'utf8')) as EvalResult;
    assert.equal(json.samples.length, 12);
    const md = readFileSync(path.join(outDir, 'eval.md'), 'utf8');
    assert.equal(md, stdout);
    assert.match(md, /## adapter:run-a vs original \(paired\)/);
    assert.match(md, /\| css \| 3 \| 0 \|/);
    const html = readFileSync(path.join(outDir, 'report.html'), 'utf8');
    assert.match(html, /^<!doctype html>/);
    assert.match(html, /<svg class="chart"/);
    assert.ok(!/<script|<link|src="http/i.test(html), 'the report loads nothing');
  });

  it('a second run calls no model: every refinement and generation comes from the cache', async () => {
    assert.ok(first, 'needs the first run');
    const { result } = await evalCommand(flags({ out: path.join(d, 'out2') }), {
      stdout: () => {},
      stderr: () => {},
    });
    assert.equal(result.calls.generator.backend, 0);
    assert.equal(result.calls.refiner.backend, 0);
    assert.equal(result.calls.generator.cached, result.calls.generator.requests);
    assert.deepEqual(
      result.samples.map((s) => [s.arm, s.task, s.rewrite, s.code]),
      first.samples.map((s) => [s.arm, s.task, s.rewrite, s.code]),
    );
    assert.deepEqual(result.comparisons, first.comparisons);
  });

  it("refuses, before any model call, an evaluation set in another run's training split", async () => {
    const runB = path.join(d, 'run-b');
    await writeRun(runB, { seed: 7 });
    const b = JSON.parse(readFileSync(path.join(runB, 'split.json'), 'utf8')) as {
      ids: { train: string[] };
    };
    const aTest = first.tasks.map((t) => t.id);
    assert.ok(
      aTest.some((id) => b.ids.train.includes(id)),
      'precondition: run-b trained on a test problem',
    );
    const cache = path.join(d, 'refused.sqlite');
    await assert.rejects(
      evalCommand(
        flags({ refinerAdapter: [runA, runB], cacheFile: cache, out: path.join(d, 'out3') }),
        {
          stdout: () => {},
          stderr: () => {},
        },
      ),
      (e: unknown) =>
        e instanceof EvalRefusedError && e.reason === 'split-overlap' && /run-b/.test(e.message),
    );
    assert.ok(!existsSync(cache), 'no cache opened: nothing was generated');
  });

  it('refuses an adapter trained on another base model, and a run of another version', async () => {
    const cache = path.join(d, 'refused2.sqlite');
    const runC = path.join(d, 'run-c');
    await writeRun(runC, { seed: 0, digest: 'feedfacefeedface' });
    const opts = (adapter: string): Parameters<typeof evaluate>[0] => ({
      dataset: 'humaneval',
      limit: 3,
      refiner: { model: SMOL, weights: 'quantized' },
      generator: { backend: 'local', model: SMOL, weights: 'quantized' },
      arms: [{ kind: 'original' }, { kind: 'adapter', path: adapter }],
      exec: 'off',
      cache,
    });
    await assert.rejects(evaluate(opts(runC)), (e: unknown) => {
      return (
        e instanceof EvalRefusedError && e.reason === 'base-model' && /feedface/.test(e.message)
      );
    });
    const qwen = path.join(d, 'qwen-adapter');
    cpSync(ADAPTER, qwen, { recursive: true });
    const cfgFile = path.join(qwen, 'adapter_config.json');
    const cfg = JSON.parse(readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
    writeFileSync(
      cfgFile,
      JSON.stringify({ ...cfg, base_model_name_or_path: 'Qwen/Qwen2.5-Coder-0.5B-Instruct' }),
    );
    await assert.rejects(
      evaluate(opts(qwen)),
      (e: unknown) =>
        e instanceof EvalRefusedError &&
        e.reason === 'base-model' &&
        /Qwen2\.5-Coder/.test(e.message),
    );
    const runV = path.join(d, 'run-v');
    await writeRun(runV, { seed: 0 });
    const info = JSON.parse(readFileSync(path.join(runV, 'run.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    writeFileSync(path.join(runV, 'run.json'), JSON.stringify({ ...info, version: 99 }));
    await assert.rejects(
      evaluate(opts(runV)),
      (e: unknown) =>
        e instanceof EvalRefusedError && e.reason === 'run-version' && /version 99/.test(e.message),
    );
    assert.ok(!existsSync(cache), 'no cache opened: nothing was generated');
  });

  it('every refusal comes before any generator call: a counting HTTP generator gets nothing', async () => {
    // The original arm comes first: a guard that ran late would let it reach the server.
    const server = await startFaultServer();
    try {
      const cache = path.join(d, 'refused3.sqlite');
      const opts = (adapters: string[], refinerModel = SMOL): Parameters<typeof evaluate>[0] => ({
        dataset: 'humaneval',
        limit: 3,
        refiner: { model: refinerModel, weights: 'quantized' },
        generator: { backend: 'openai', baseUrl: `${server.url}/ok/v1`, model: 'echo' },
        arms: [
          { kind: 'original' },
          ...adapters.map((p) => ({ kind: 'adapter' as const, path: p })),
        ],
        exec: 'off',
        cache,
      });
      const refused = async (adapter: string | string[], reason: string, refinerModel?: string) =>
        assert.rejects(
          evaluate(opts(typeof adapter === 'string' ? [adapter] : adapter, refinerModel)),
          (e: unknown) => e instanceof EvalRefusedError && e.reason === reason,
          `${String(adapter)}: ${reason}`,
        );
      // Split overlap: run-a's test split (the first run's) holds problems run-b trained on.
      await refused([runA, path.join(d, 'run-b')], 'split-overlap');
      // Another base model: by run digest, by adapter name, and (no name) by loading it.
      await refused(path.join(d, 'run-c'), 'base-model');
      await refused(path.join(d, 'qwen-adapter'), 'base-model');
      const QWEN = path.join(
        cachePaths.testModels(),
        'qwen2.5-coder-0.5b-instruct-awq-q4_k_m.gguf',
      );
      if (existsSync(QWEN)) {
        const nameless = path.join(d, 'nameless-adapter');
        cpSync(ADAPTER, nameless, { recursive: true });
        const f = path.join(nameless, 'adapter_config.json');
        const c = JSON.parse(readFileSync(f, 'utf8')) as Record<string, unknown>;
        writeFileSync(f, JSON.stringify({ ...c, base_model_name_or_path: null }));
        await refused(nameless, 'base-model', QWEN);
      }
      // A run directory of another version.
      await refused(path.join(d, 'run-v'), 'run-version');
      assert.equal(server.hits.length, 0, 'no request reached the generator');
    } finally {
      await server.close();
    }
  });

  it('with execution (exec venv): sandbox outcomes, pass@1 and an exact McNemar test', async (t) => {
    if (execVenvPython() === undefined) {
      t.skip('no exec venv: run `rl4qe setup-exec` (or scripts/setup-exec.sh) to test execution');
      return;
    }
    const { result } = await evalCommand(
      flags({
        refinerAdapter: [],
        arms: 'original,untrained',
        limit: '2',
        maxTokens: '48',
        exec: 'on',
        out: path.join(d, 'out-exec'),
      }),
      { stdout: () => {}, stderr: () => {} },
    );
    assert.equal(result.settings.exec, true);
    const execStatuses = ['pass', 'fail', 'syntax_error', 'timeout', 'memory', 'crash'];
    for (const s of result.samples)
      assert.ok(execStatuses.includes(s.outcome), `${s.task}: ${s.outcome}`);
    assert.ok('pass@1' in result.summaries[0]!.metrics);
    const c = result.comparisons[0]!;
    assert.ok(c.mcnemar !== null);
    assert.equal(c.mcnemar.n, 2);
    assert.ok(c.metrics.some((m) => m.metric === 'pass@1' && m.n === 2));
  });
});
