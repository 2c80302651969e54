// The pipelined evaluation (generation in chunks, each chunk's tests in the sandbox while later
// chunks and arms are refined and generated) must give exactly the numbers of the sequential one
// (every stage waiting for the one before): same samples, scores, outcomes, statistics and
// prompt-search choice. SmolLM2 as refiner and generator on 3 HumanEval problems, chunks of 2
// requests (several chunks per arm), with the sandbox when the exec venv exists.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { evaluate, type EvalOptions, type EvalResult } from '../../src/eval/index.js';
import { execVenvPython } from '../../src/sandbox/index.js';
import { cachePaths } from '../../src/util/paths.js';
import { requireTestModel } from '../generators/test-model.js';

const SMOL = path.join(cachePaths.testModels(), 'smollm2-135m-instruct-q4_1.gguf');

/** eval.json without what may differ between two runs: when, how long, and the schedule. */
function numbers(r: EvalResult): unknown {
  const { createdAt: _c, seconds: _s, timings: _t, ...rest } = r;
  return JSON.parse(JSON.stringify(rest));
}

describe('pipelined and sequential evaluations give the same eval.json', () => {
  const exec = execVenvPython() !== undefined;
  const opts = (schedule: 'pipelined' | 'sequential', chunkSize: number): EvalOptions => ({
    dataset: 'humaneval',
    limit: 3,
    refiner: { model: SMOL, weights: 'quantized', maxTokens: 12 },
    generator: { backend: 'local', model: SMOL, weights: 'quantized' },
    arms: [{ kind: 'original' }, { kind: 'untrained' }, { kind: 'prompt-search' }],
    searchSize: 1,
    maxTokens: 24,
    exec: exec ? 'on' : 'off',
    cache: false,
    bootstrapResamples: 200,
    schedule,
    chunkSize,
  });

  it(`same samples, scores and statistics${exec ? ' (with the sandbox)' : ' (no exec venv: text metrics only)'}`, async (t) => {
    requireTestModel();
    if (!exec) t.diagnostic('no exec venv: the sandbox is not in the pipeline (rl4qe setup-exec)');
    const seq = await evaluate(opts('sequential', 2));
    const pipe = await evaluate(opts('pipelined', 2));
    assert.equal(seq.timings.schedule, 'sequential');
    assert.equal(pipe.timings.schedule, 'pipelined');
    assert.equal(pipe.timings.chunkSize, 2);
    assert.equal(seq.samples.length, 9);
    // Something was really generated and scored in both.
    for (const r of [seq, pipe]) {
      assert.equal(r.calls.generator.backend, r.calls.generator.requests);
      assert.ok(r.timings.stages.generate > 0 && r.timings.stages.refine > 0);
      if (exec) {
        assert.ok(r.timings.stages.sandbox > 0);
        for (const s of r.samples)
          assert.ok(!['not_run', 'sandbox_error'].includes(s.outcome), `${s.task}: ${s.outcome}`);
      }
    }
    assert.deepEqual(numbers(pipe), numbers(seq));
  });
});
