// The rl4qe side of `rl4qe bench rl-step`, run as a child process so its peak RSS is its own:
// the trainer (src/train) on the step scripts/bench_rl_step_trl.py gives TRL — the same prompts
// (built the same way, cut to the same token budget with the model's own tokenizer), PEFT-style
// LoRA r=8 α 32 dropout 0 on q,k,v,o, no KL, `prompts` queries × K, temperature 0.7, top-p 0.9,
// exactly `new` rewrite tokens (stop tokens off), the same length reward −|len − 300| / 300, AdamW
// at TRL's default learning rate (1e-6). One warm-up step, then `steps` timed steps; prints one
// JSON line {secondsPerStep (median), stepsS, peakRssMb, times (per stage, median)}.
//   node dist/src/cli/benches/rl-step-worker.js MODEL.gguf STEPS PROMPTS K PROMPT NEW [float32|quantized]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Tokenizer } from '../../tokenizer/index.js';
import { resolveTrainConfig } from '../../train/config.js';
import { readRunInfo } from '../../train/run-dir.js';
import { train } from '../../train/trainer.js';
import type { StepRecord } from '../../train/records.js';
import type { RewardFn } from '../../rewards/types.js';

const BASE =
  'Rewrite the following programming question so that a code generator can solve it. Keep every ' +
  'requirement, name the inputs and outputs, and state the expected result.\n\nQuestion {i}: I have a ' +
  "pandas DataFrame with columns 'user', 'time' and 'amount'. For each user I want the cumulative sum " +
  'of amount ordered by time, but it must restart whenever the gap between consecutive times is more ' +
  'than {i} days. ';
const CONTEXT =
  'The frame has about ten thousand rows, times are datetime64 values, some users have a single row, ' +
  "and the result should keep the original index and add a column named 'running'. ";

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<void> {
  const [model, stepsS, promptsS, kS, promptS, newS, weightsS, computeS] = process.argv.slice(2);
  if (!model || !newS)
    throw new Error('usage: rl-step-worker MODEL STEPS PROMPTS K PROMPT NEW [WEIGHTS [COMPUTE]]');
  const steps = Number(stepsS);
  const prompts = Number(promptsS);
  const k = Number(kS);
  const promptLen = Number(promptS);
  const newTokens = Number(newS);
  const tok = Tokenizer.fromGgufFile(model);
  // As the TRL script: grow the text past the budget, cut to budget − 8 tokens, decode.
  const makePrompt = (i: number): string => {
    let text = BASE.replaceAll('{i}', String(i + 2));
    while (tok.encode(text).length < promptLen) text += CONTEXT;
    return tok.decode(tok.encode(text).slice(0, promptLen - 8), { skipSpecialTokens: true });
  };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rl4qe-bench-rl-step-'));
  const rows = Array.from({ length: prompts * (steps + 1) }, (_, i) => ({
    id: `p${i}`,
    query: makePrompt(i),
    reference: '',
  }));
  const data = path.join(dir, 'prompts.jsonl');
  fs.writeFileSync(data, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const cfg = resolveTrainConfig([
    {
      source: 'bench rl-step',
      value: {
        // The prompt is the text itself (TRL's plain-text prompts, no chat template).
        refiner: {
          model,
          weights: weightsS === 'quantized' ? 'quantized' : 'float32',
          compute: computeS === 'bf16' ? 'bf16' : 'fp32',
          format: 'paper',
          template: '{query}',
          maxPromptTokens: promptLen,
        },
        adapter: {
          kind: 'lora',
          r: 8,
          alpha: 32,
          dropout: 0,
          targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
        },
        optim: { lr: 1e-6 },
        rollout: {
          queriesPerStep: prompts,
          samplesPerQuery: k,
          temperature: 0.7,
          topP: 0.9,
          maxNewTokens: newTokens,
        },
        // GRPO's advantage: (r − group mean) / group std.
        loss: { baseline: 'group', scaleByStd: true, klCoef: 0 },
        reward: { weights: { bleu: 1 }, target: { kind: 'rewrite' } },
        generator: { backend: 'none' },
        data: { dataset: 'custom', path: data, testSize: 0, validationSize: 0 },
        eval: { problems: 0 },
        run: {
          dir: path.join(dir, 'run'),
          steps: steps + 1,
          checkpointEvery: 1_000_000,
          log: 'quiet',
        },
      },
    },
  ]);
  const lengthReward: RewardFn = {
    name: 'length',
    score: (batch) => batch.map((s) => -Math.abs((s.refinedQuery ?? '').length - 300) / 300),
  };
  const recs: StepRecord[] = [];
  await train({
    config: cfg,
    reward: lengthReward,
    stopTokens: [],
    progress: 'quiet',
    onStep: (r) => recs.push(r),
  });
  // What the compute mode did (run.json): bf16, or fp32 with the fall-back note.
  const compute = readRunInfo(path.join(dir, 'run')).compute;
  const timed = recs.slice(1);
  const stage = (k2: keyof StepRecord['times']): number => median(timed.map((r) => r.times[k2]));
  process.stdout.write(
    JSON.stringify({
      secondsPerStep: median(timed.map((r) => r.times.total)),
      stepsS: recs.map((r) => r.times.total),
      peakRssMb: process.resourceUsage().maxRSS / 1024,
      extra: {
        times: { sample: stage('sample'), reward: stage('reward'), update: stage('update') },
        rewriteTokens: timed.map((r) => r.rewriteTokens),
        sampleTokensPerSec: median(timed.map((r) => r.sampleTokensPerSec)),
        updateTokensPerSec: median(timed.map((r) => r.updateTokensPerSec)),
        ...(compute ? { compute } : {}),
      },
    }) + '\n',
  );
  fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
