// `rl4qe demo`: the plan from flags (sizes, exec, models, refusals) without loading anything, and
// `demo --quick` end to end through the CLI in a child process (the real SmolLM2 test model as
// refiner and generator, 3 held-out DS-1000 problems): the run directory, eval.json, the reports
// and the printed table. Text metrics only (--exec off) so that the run stays well under 90 s on
// 2 busy cores; the execution path is the evaluation's own tests (test/eval/eval-e2e.test.ts).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DEMO_REFINER, DEMO_SIZES, demoCommand, demoPlan, type DemoFlags } from './demo.js';
import { cachePaths } from '../../util/paths.js';
import { ConfigError, NotFoundError } from '../../util/errors.js';

const SMOL = path.join(cachePaths.testModels(), DEMO_REFINER);
// dist/src/cli/commands/demo.test.js → the repository root.
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');

/**
 * The CLI as a user runs it. Until demo is registered in src/cli/commands/index.ts the child adds
 * it to the command list itself; afterwards this is exactly `rl4qe demo ...`.
 */
function runCli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const u = (p: string): string => pathToFileURL(path.join(ROOT, 'dist', 'src', 'cli', p)).href;
  const script = [
    `const { commands } = await import(${JSON.stringify(u('commands/index.js'))});`,
    `const { registerDemo } = await import(${JSON.stringify(u('commands/demo.js'))});`,
    `if (!commands.some((c) => c.name === 'registerDemo')) commands.push(registerDemo);`,
    `const { main } = await import(${JSON.stringify(u('main.js'))});`,
    `process.exitCode = await main(process.argv.slice(1));`,
  ].join('\n');
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 240_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const flags = (over: Partial<DemoFlags> = {}): DemoFlags => ({ exec: 'off', ...over });

describe('rl4qe demo: the plan', () => {
  it('sizes: default, --quick, --steps and --problems', () => {
    const d = demoPlan(flags({ out: '/tmp/rl4qe-demo-plan' }));
    assert.equal(d.quick, false);
    assert.equal(d.config.run.steps, DEMO_SIZES.default.steps);
    assert.equal(d.size.problems, DEMO_SIZES.default.problems);
    assert.match(d.generator, /qwen2\.5-coder-0\.5b/);
    assert.equal(d.config.data.split, 'leak-free');
    assert.equal(d.config.run.dir, path.join('/tmp/rl4qe-demo-plan', 'run'));
    const q = demoPlan(flags({ quick: true, steps: '3', limit: '5' }));
    assert.equal(q.quick, true);
    assert.equal(q.config.run.steps, 3);
    assert.equal(q.size.problems, 5);
    assert.equal(q.generator, SMOL);
    assert.equal(q.config.rollout.maxNewTokens, DEMO_SIZES.quick.rewriteTokens);
  });

  it('--exec off trains on text metrics only; on adds the execution reward', () => {
    assert.deepEqual(demoPlan(flags()).config.reward.weights, { bleu: 1 });
    assert.equal(demoPlan(flags()).exec, false);
    const on = demoPlan(flags({ exec: 'on' }));
    assert.equal(on.exec, true);
    assert.deepEqual(on.config.reward.weights, { bleu: 1, exec: 1 });
  });

  it('refuses bad flags before anything runs', () => {
    assert.throws(() => demoPlan(flags({ steps: '0' })), ConfigError);
    assert.throws(() => demoPlan(flags({ limit: 'x' })), ConfigError);
    assert.throws(() => demoPlan(flags({ exec: 'maybe' })), ConfigError);
  });

  it('a missing model says how to get it, before any work', async () => {
    const out = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-demo-missing-'));
    try {
      await assert.rejects(
        demoCommand(flags({ quick: true, out, refinerModel: path.join(out, 'absent.gguf') }), {
          stdout: () => {},
          stderr: () => {},
        }),
        (e: unknown) =>
          e instanceof NotFoundError &&
          /node scripts\/fetch-test-models\.mjs/.test(e.message) &&
          /rl4qe pull HuggingFaceTB\/SmolLM2-135M-Instruct/.test(e.message),
      );
      assert.equal(existsSync(path.join(out, 'run')), false);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});

describe('rl4qe demo --quick through the CLI (SmolLM2 refiner and generator, 3 problems)', () => {
  let d: string;
  before(() => {
    assert.ok(
      existsSync(SMOL),
      `test model missing: ${SMOL}\n  run: node scripts/fetch-test-models.mjs`,
    );
    d = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-demo-'));
  });
  after(() => rmSync(d, { recursive: true, force: true }));

  it('trains, evaluates, prints the table with intervals and writes the reports', () => {
    const out = path.join(d, 'demo');
    const t0 = performance.now();
    const r = runCli(['demo', '--quick', '--exec', 'off', '--out', out]);
    const seconds = (performance.now() - t0) / 1000;
    assert.equal(r.status, 0, `demo failed (${r.status}):\n${r.stderr.slice(-3000)}`);

    // The printed comparison: one row per metric, each arm's change with its interval.
    assert.match(r.stdout, /\| metric \| original \| untrained \| trained \|/);
    for (const m of ['BLEU-4', 'ROUGE-L', 'F1', 'Overlap', 'CSS'])
      assert.match(r.stdout, new RegExp(`^\\| ${m} \\| \\d\\.\\d{3} \\| .*\\[.*\\]`, 'm'), m);
    assert.match(r.stdout, /3 held-out DS-1000 test problems/);
    assert.ok(r.stdout.includes(path.join(out, 'run', 'report.html')), 'training report path');
    assert.ok(r.stdout.includes(path.join(out, 'eval', 'report.html')), 'eval report path');
    // Progress was shown while training (JSON lines off a TTY) and while evaluating.
    assert.match(r.stderr, /"event":"step","step":2/);
    assert.match(r.stderr, /\[2\/2\] evaluating/);

    // The run directory.
    const run = path.join(out, 'run');
    for (const f of ['run.json', 'config.json', 'split.json', 'metrics.jsonl', 'samples.jsonl'])
      assert.ok(existsSync(path.join(run, f)), f);
    assert.equal(
      readFileSync(path.join(run, 'checkpoints', 'latest'), 'utf8').trim(),
      'step-000002',
    );
    assert.match(readFileSync(path.join(run, 'report.html'), 'utf8'), /<html/i);

    // The evaluation: the three arms on the run's own held-out test problems.
    const ev = JSON.parse(readFileSync(path.join(out, 'eval', 'eval.json'), 'utf8')) as {
      settings: { tasks: number; splitSource: string; exec: boolean; dataset: string };
      arms: { name: string; adapter?: { overlap: { checked: boolean; trainOverlap: number } } }[];
      comparisons: { arm: string; base: string; metrics: { metric: string; diffCi: unknown }[] }[];
    };
    assert.equal(ev.settings.dataset, 'ds1000');
    assert.equal(ev.settings.tasks, 3);
    assert.equal(ev.settings.exec, false);
    assert.match(ev.settings.splitSource, /run\/split\.json$/);
    assert.deepEqual(
      ev.arms.map((a) => a.name),
      ['original', 'untrained', 'trained'],
    );
    assert.equal(ev.arms[2]!.adapter!.overlap.checked, true);
    assert.equal(ev.arms[2]!.adapter!.overlap.trainOverlap, 0);
    assert.deepEqual(
      ev.comparisons.map((c) => `${c.arm} vs ${c.base}`),
      ['untrained vs original', 'trained vs original'],
    );
    for (const c of ev.comparisons)
      for (const m of c.metrics) assert.notEqual(m.diffCi, undefined, `${c.arm} ${m.metric}`);
    assert.match(readFileSync(path.join(out, 'eval', 'report.html'), 'utf8'), /<svg/);
    const summary = JSON.parse(readFileSync(path.join(out, 'demo.json'), 'utf8')) as {
      quick: boolean;
      seconds: { total: number };
      machine: { cores: number };
    };
    assert.equal(summary.quick, true);
    assert.ok(summary.seconds.total > 0 && summary.machine.cores > 0);
    process.stderr.write(`# demo --quick: ${seconds.toFixed(1)} s wall (child process)\n`);
  });
});
