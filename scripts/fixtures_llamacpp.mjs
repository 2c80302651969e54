#!/usr/bin/env node
// Pinned oracle: greedy continuations from llama.cpp (node-llama-cpp 3.21.1, CPU, its bundled
// llama.cpp build) on the offline SmolLM2-135M-Instruct Q4_1 GGUF, for the parity test in
// test/models/gguf.test.ts. Prompts are given as token ids (tokenized here by llama.cpp and
// recorded), so the test needs no tokenizer.
// Run from the repository root (after `node scripts/fetch-test-models.mjs`):
//   node scripts/fixtures_llamacpp.mjs [--module PATH_TO_node-llama-cpp]
// Writes test/fixtures/models/llamacpp-smollm2.json.
import { writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
const modIdx = args.indexOf('--module');
const modSpec =
  modIdx >= 0
    ? pathToFileURL(path.resolve(args[modIdx + 1], 'dist/index.js')).href
    : 'node-llama-cpp';
const { getLlama } = await import(modSpec);

const home = process.env.RL4QE_HOME ?? path.join(os.homedir(), '.cache', 'rl4qe');
const modelPath = path.join(home, 'test-models', 'smollm2-135m-instruct-q4_1.gguf');
if (!existsSync(modelPath)) {
  console.error(`missing ${modelPath}: run node scripts/fetch-test-models.mjs`);
  process.exit(1);
}
const N = 64;
const prompts = [
  '<|im_start|>user\nWrite a Python function that returns the square of a number.<|im_end|>\n<|im_start|>assistant\n',
  'The capital of France is',
  'import numpy as np\n\ndef softmax(x):\n',
];

const llama = await getLlama({ gpu: false, logLevel: 'error' });
const model = await llama.loadModel({ modelPath });
const out = [];
for (const text of prompts) {
  const context = await model.createContext({ contextSize: 512, batchSize: 512, threads: 1 });
  const seq = context.getSequence();
  const prompt = [...model.tokenize(text, true)];
  const tokens = [];
  for await (const t of seq.evaluate(prompt, { temperature: 0 })) {
    tokens.push(t);
    if (tokens.length >= N) break;
  }
  out.push({ text, prompt, tokens, decoded: model.detokenize(tokens) });
  await context.dispose();
}
await model.dispose();
const sha = createHash('sha256').update(readFileSync(modelPath)).digest('hex');
mkdirSync('test/fixtures/models', { recursive: true });
writeFileSync(
  'test/fixtures/models/llamacpp-smollm2.json',
  JSON.stringify(
    {
      regenerate: 'node scripts/fixtures_llamacpp.mjs',
      oracle: 'node-llama-cpp 3.21.1 (CPU), greedy (temperature 0), no repeat penalty',
      model: { file: 'smollm2-135m-instruct-q4_1.gguf', sha256: sha },
      cases: out,
    },
    null,
    1,
  ) + '\n',
);
console.log(out.map((c) => JSON.stringify(c.decoded.slice(0, 80))).join('\n'));
