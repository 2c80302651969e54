// Exact resume, through the CLI as a user runs it: a run killed with SIGKILL at a random step
// (possibly in the middle of writing a checkpoint) and resumed with `rl4qe train --resume` ends
// with adapter weights bit-identical to an uninterrupted run of the same config (deterministic
// mode), every step recorded once, and no generator request that was answered before the kill
// sent again (the SQLite cache answers it). The generator is an OpenAI-compatible server on
// 127.0.0.1 that echoes the rewrite, so the reward (BLEU-4 of the echo against the reference)
// (ROUGE-L + CSS of the echo against the reference) varies with the rewrite, and the test checks that
// the updates were not zero (a run whose adapter never moves would resume 'exactly' for free).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startFaultServer, type FaultServer } from '../generators/fault-server.js';
import { cachePaths } from '../../src/util/paths.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { readJsonlRecords } from '../../src/train/run-dir.js';
import type { MetricsRecord } from '../../src/train/records.js';

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');
const smolFile = path.join(cachePaths.testModels(), 'smollm2-135m-instruct-q4_1.gguf');
const STEPS = 5;

function config(dir: string, baseUrl: string, extra = ''): string {
  const file = path.join(dir, 'config.yaml');
  fs.writeFileSync(
    file,
    `refiner:
  model: ${smolFile}
  weights: quantized
  format: paper
  maxPromptTokens: 96
adapter:
  r: 4
  alpha: 16
  dropout: 0.1
optim:
  lr: 0.002
rollout:
  queriesPerStep: 2
  samplesPerQuery: 2
  temperature: 1.0
  maxNewTokens: 16
reward:
  weights:
    rouge_l: 1
    css: 1
generator:
  backend: openai
  baseUrl: ${baseUrl}
  model: echo
  retry:
    maxRetries: 3
    baseDelayMs: 10
  cache:
    file: ${path.join(dir, 'generator-cache.sqlite')}
  format: chat
  params:
    temperature: 0
    maxTokens: 64
data:
  dataset: ds1000
  trainLimit: 6
eval:
  problems: 0
run:
  dir: ${path.join(dir, 'run')}
  steps: ${STEPS}
  seed: 7
  checkpointEvery: 1
  keepCheckpoints: 2
  deterministic: true
  log: json
${extra}`,
  );
  return file;
}

function runCli(args: string[]): Promise<{ status: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cli, 'train', ...args],
      { env: { ...process.env } },
      (err, _o, stderr) =>
        resolve({ status: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr }),
    );
  });
}

function finalAdapter(runDir: string): Buffer {
  const latest = fs.readFileSync(path.join(runDir, 'checkpoints', 'latest'), 'utf8').trim();
  return fs.readFileSync(
    path.join(runDir, 'checkpoints', latest, 'adapter', 'adapter_model.safetensors'),
  );
}

const steps = (runDir: string): number[] =>
  readJsonlRecords<MetricsRecord>(path.join(runDir, 'metrics.jsonl'))
    .records.filter((r) => r.type === 'step')
    .map((r) => r.step);

test('a run killed with SIGKILL at a random step and resumed ends bit-identical, sending no answered request again', async () => {
  assert.ok(
    fs.existsSync(smolFile),
    `missing test model ${smolFile}: run node scripts/fetch-test-models.mjs`,
  );
  const server: FaultServer = await startFaultServer();
  const base = `${server.url}/ok/v1`;
  try {
    // Uninterrupted run.
    const a = fs.mkdtempSync(path.join(os.tmpdir(), 'rl4qe-resume-a-'));
    const ra = await runCli(['-c', config(a, base)]);
    assert.equal(ra.status, 0, ra.stderr);
    assert.deepEqual(steps(path.join(a, 'run')), [1, 2, 3, 4, 5]);
    const hitsA = server.hits.length;
    const grads = readJsonlRecords<MetricsRecord>(path.join(a, 'run', 'metrics.jsonl'))
      .records.filter((r) => r.type === 'step')
      .map((r) => (r.type === 'step' ? r.gradNorm : 0));
    assert.ok(grads.filter((g) => g > 0).length >= 3, `gradient norms ${grads.join(', ')}`);
    assert.ok(hitsA > 0, 'the generator was called');

    // Killed run: SIGKILL once `killAt` steps are on disk (the next checkpoint may be mid-write).
    const killAt = 1 + Math.floor(Math.random() * (STEPS - 2)); // 1 … STEPS−2
    const b = fs.mkdtempSync(path.join(os.tmpdir(), 'rl4qe-resume-b-'));
    const cfgB = config(b, base);
    const runB = path.join(b, 'run');
    const child = spawn(process.execPath, [cli, 'train', '-c', cfgB], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let killedAt = 0;
    await new Promise<void>((resolve, reject) => {
      const timer = setInterval(() => {
        let n = 0;
        try {
          n = steps(runB).length;
        } catch {
          // not there yet
        }
        if (n >= killAt) {
          killedAt = Date.now();
          child.kill('SIGKILL');
          clearInterval(timer);
        }
      }, 20);
      child.on('exit', (code, signal) => {
        clearInterval(timer);
        if (signal === 'SIGKILL') resolve();
        else
          reject(
            new Error(`the run ended (code ${code}) before it could be killed at step ${killAt}`),
          );
      });
    });
    const before = server.hits.slice(hitsA).filter((h) => h.at < killedAt - 1000);
    const nBefore = server.hits.length;
    const rb = await runCli(['--resume', runB]);
    assert.equal(rb.status, 0, rb.stderr);
    assert.deepEqual(
      steps(runB),
      [1, 2, 3, 4, 5],
      `killed after step ${killAt}: each step recorded once`,
    );
    assert.ok(
      finalAdapter(path.join(a, 'run')).equals(finalAdapter(runB)),
      `killed after step ${killAt}: the resumed adapter must be bit-identical to the uninterrupted one`,
    );
    // Requests answered well before the kill are in the cache: none reaches the server again.
    const key = (h: { body: unknown }): string => JSON.stringify(h.body);
    const answered = new Set(before.map(key));
    const again = server.hits.slice(nBefore).filter((h) => answered.has(key(h)));
    assert.equal(again.length, 0, `${again.length} answered requests were sent again`);
  } finally {
    await server.close();
  }
});

test('resume refuses a changed configuration and a directory that is not a run, before any work', async () => {
  const server = await startFaultServer();
  try {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'rl4qe-resume-c-'));
    const r1 = await runCli(['-c', config(d, `${server.url}/ok/v1`), '--set', 'run.steps=1']);
    assert.equal(r1.status, 0, r1.stderr);
    const hits = server.hits.length;
    const r2 = await runCli(['--resume', path.join(d, 'run'), '--set', 'optim.lr=0.5']);
    assert.notEqual(r2.status, 0);
    assert.match(r2.stderr, /configuration differs/);
    const r3 = await runCli(['--resume', d]);
    assert.notEqual(r3.status, 0);
    assert.match(r3.stderr, /not a run directory/);
    // A new run into an existing run directory is refused too.
    const r4 = await runCli(['-c', config(d, `${server.url}/ok/v1`)]);
    assert.notEqual(r4.status, 0);
    assert.match(r4.stderr, /already holds a run/);
    assert.equal(server.hits.length, hits, 'no generator call for a refused run');
  } finally {
    await server.close();
  }
});

test('a generator that fails every request stops the run with the failure kind, having scored nothing', async () => {
  const server = await startFaultServer();
  try {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'rl4qe-fail-'));
    const cfg = resolveTrainConfig([
      {
        source: 'test',
        value: {
          refiner: { model: smolFile, weights: 'quantized', format: 'paper', maxPromptTokens: 96 },
          rollout: { queriesPerStep: 2, samplesPerQuery: 2, temperature: 1, maxNewTokens: 6 },
          reward: { weights: { bleu: 1 } },
          generator: {
            backend: 'openai',
            baseUrl: `${server.url}/always-503/v1`,
            model: 'x',
            retry: { maxRetries: 0 },
            cache: { enabled: false },
            maxConsecutiveFailures: 3,
          },
          data: { dataset: 'ds1000', trainLimit: 4 },
          eval: { problems: 0 },
          run: { dir: path.join(d, 'run'), steps: 3, log: 'quiet' },
        },
      },
    ]);
    await assert.rejects(train({ config: cfg }), (e: Error) => {
      assert.match(e.message, /failed 3 requests in a row/);
      assert.match(e.message, /server_error/);
      return true;
    });
    assert.deepEqual(steps(path.join(d, 'run')), [], 'no step was recorded: nothing was scored');
    assert.ok(!fs.existsSync(path.join(d, 'run', 'checkpoints', 'latest')));
  } finally {
    await server.close();
  }
});

test('Ctrl-C (SIGINT) stops after the current step with a checkpoint, and --resume finishes the run', async () => {
  const server = await startFaultServer();
  try {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'rl4qe-sigint-'));
    const runDir = path.join(d, 'run');
    const child = spawn(process.execPath, [cli, 'train', '-c', config(d, `${server.url}/ok/v1`)], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const code = await new Promise<number | null>((resolve) => {
      let sent = false;
      const timer = setInterval(() => {
        let n = 0;
        try {
          n = steps(runDir).length;
        } catch {
          // not there yet
        }
        if (!sent && (n >= 1 || stderr.includes('"event":"step"'))) {
          sent = true;
          child.kill('SIGINT');
        }
      }, 20);
      child.on('exit', (c) => {
        clearInterval(timer);
        resolve(c);
      });
    });
    assert.equal(code, 130, stderr);
    assert.match(stderr, /stopping after this step/);
    const done = steps(runDir);
    assert.ok(done.length >= 1 && done.length < STEPS, `stopped early: steps ${done.join(',')}`);
    const latest = fs.readFileSync(path.join(runDir, 'checkpoints', 'latest'), 'utf8').trim();
    assert.equal(
      latest,
      `step-${String(done[done.length - 1]).padStart(6, '0')}`,
      'the last step is checkpointed',
    );
    const r = await runCli(['--resume', runDir]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(steps(runDir), [1, 2, 3, 4, 5]);
  } finally {
    await server.close();
  }
});
