// The local-engine generator: rl4qe's own models + PEFT LoRA adapters, against transformers + PEFT
// (scripts/fixtures_local_generator.py) on the committed tiny models, and end to end on the
// SmolLM2-135M test GGUF (small maxTokens, one load shared by the tests).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  LocalEngineGenerator,
  createGenerator,
  isPeftTarget,
  peftPatternKey,
  type PeftLoraConfig,
  type Completion,
  type GenerationRequest,
  type GenerationResult,
} from '../../src/generators/index.js';
import {
  getBackend,
  logits as headLogits,
  noGrad,
  reshape,
  slice,
} from '../../src/tensor/index.js';
import { generate } from '../../src/sampling/index.js';
import { writeSafetensors, SafetensorsFile } from '../../src/io/safetensors/index.js';
import {
  ConfigError,
  FormatError,
  NotFoundError,
  ShapeError,
  UnsupportedError,
} from '../../src/util/errors.js';
import { requireTestModel } from './test-model.js';

const FIX = 'test/fixtures/generators/local';
const REGEN = '~/.cache/rl4qe/oracle/bin/python scripts/fixtures_local_generator.py';
interface Expected {
  stopTokenIds: number[];
  matching: {
    targets: { config: Record<string, unknown>; matches: Record<string, boolean> }[];
    patternKeys: string[];
    patternOf: Record<string, string>;
  };
  maxTokens: number;
  smollm2: {
    adapter: string;
    messages: { role: 'system' | 'user'; content: string }[];
    promptIds: number[];
    tokens: number[];
    text: string;
    finishReason: string;
    stopTokenIds: number[];
    firstLogitsTop: { ids: number[]; values: number[] };
    baseFirstLogitsAtTop: number[];
  };
  models: Record<
    string,
    {
      model: string;
      adapter: string;
      messages: { role: 'system' | 'user'; content: string }[];
      promptIds: number[];
      tokens: number[];
      text: string;
      finishReason: string;
      logits: number[];
      baseLogits: number[];
    }
  >;
}
const expected = JSON.parse(readFileSync(path.join(FIX, 'expected.json'), 'utf8')) as Expected;
const TOKENIZER = path.join(FIX, 'tokenizer');

function ok(r: GenerationResult | undefined): Completion {
  assert.ok(r?.ok, JSON.stringify(r));
  return r;
}

describe('LocalEngineGenerator + PEFT adapter vs transformers + PEFT (tiny models)', () => {
  for (const name of ['tiny-llama', 'tiny-qwen2']) {
    it(`${name}: prompt ids, first-step logits and greedy text equal PEFT's`, async () => {
      const e = expected.models[name]!;
      const g = new LocalEngineGenerator({
        model: e.model,
        adapter: e.adapter,
        tokenizer: TOKENIZER,
      });
      try {
        const req: GenerationRequest = {
          id: name,
          messages: e.messages.filter((m) => m.role !== 'system'),
          system: e.messages.find((m) => m.role === 'system')?.content,
          params: { maxTokens: expected.maxTokens, temperature: 0 },
        };
        const E = await g.engine();
        assert.deepEqual(E.stopTokenIds, expected.stopTokenIds);
        const ids = g.promptIds(E, req);
        assert.deepEqual(ids, e.promptIds, `prompt ids differ; regenerate: ${REGEN}`);
        const lg = noGrad(() => {
          const T = ids.length;
          const h = E.model.forward({ ids: Int32Array.from(ids), shape: [1, T] });
          const last = reshape(slice(h, 1, T - 1, T), [1, E.config.hiddenSize]);
          return Array.from(headLogits(last, E.model.headWeight()).data);
        });
        let maxDiff = 0;
        let maxBase = 0;
        lg.forEach((v, i) => {
          maxDiff = Math.max(maxDiff, Math.abs(v - e.logits[i]!));
          maxBase = Math.max(maxBase, Math.abs(v - e.baseLogits[i]!));
        });
        assert.ok(maxDiff < 1e-3, `logits differ from PEFT by ${maxDiff}; regenerate: ${REGEN}`);
        // The adapter really is applied: without it the logits are far away.
        assert.ok(maxBase > 0.5, `adapter has no effect (max |Δ| to base ${maxBase})`);
        const c = ok((await g.generate([req]))[0]);
        assert.equal(c.text, e.text, `greedy text differs from PEFT's; regenerate: ${REGEN}`);
        assert.equal(c.finishReason, e.finishReason);
        assert.equal(c.usage.completionTokens, e.tokens.length);
        assert.equal(c.usage.promptTokens, e.promptIds.length);
        assert.equal(c.costUsd, 0);
      } finally {
        await g.dispose();
      }
    });
  }

  it('dispose() frees every buffer the model and its adapter held', async () => {
    const live = () => getBackend().liveBytes();
    const b0 = live();
    const e = expected.models['tiny-llama']!;
    const g = new LocalEngineGenerator({
      model: e.model,
      adapter: e.adapter,
      tokenizer: TOKENIZER,
    });
    await g.load();
    const b1 = live();
    await g.generate([{ id: 'm', prompt: 'abc', params: { maxTokens: 4 } }]);
    await g.dispose();
    const b2 = live();
    // The base weights are the loader's own Float32Arrays (zero-copy, not native allocations);
    // the adapter's LoRA parameters (and the KV cache while generating) are native memory.
    assert.ok(b1 - b0 > 0, `the model holds ${b1 - b0} native bytes`);
    // ≤, not =: the finalizers of other tests' unreleased intermediates may free memory meanwhile.
    assert.ok(b2 <= b0, `${b2 - b0} bytes still held after dispose()`);
  });

  it('per-module rank/alpha (rank_pattern, alpha_pattern) and rsLoRA scaling as PEFT computes them', async () => {
    const l = new LocalEngineGenerator({
      model: expected.models['tiny-llama']!.model,
      adapter: expected.models['tiny-llama']!.adapter,
      tokenizer: TOKENIZER,
    });
    const q = new LocalEngineGenerator({
      model: expected.models['tiny-qwen2']!.model,
      adapter: expected.models['tiny-qwen2']!.adapter,
      tokenizer: TOKENIZER,
    });
    try {
      const lm = (await l.engine()).adapter!.modules;
      assert.equal(lm.length, 2 * 7);
      const o = lm.find((m) => m.name === 'model.layers.1.self_attn.o_proj')!;
      assert.deepEqual([o.r, o.scaling], [2, 2]); // alpha 4 / r 2
      const qp = lm.find((m) => m.name === 'model.layers.0.self_attn.q_proj')!;
      assert.deepEqual([qp.r, qp.scaling], [4, 2]); // alpha 8 / r 4
      const qm = (await q.engine()).adapter!.modules;
      assert.deepEqual(
        qm.map((m) => m.name.replace(/^model\.layers\.\d+\./, '')).sort(),
        ['mlp.down_proj', 'mlp.down_proj', 'self_attn.q_proj', 'self_attn.q_proj'].concat([
          'self_attn.v_proj',
          'self_attn.v_proj',
        ]),
      );
      assert.ok(qm.every((m) => m.r === 4 && m.scaling === 4)); // rsLoRA: 8 / √4
    } finally {
      await l.dispose();
      await q.dispose();
    }
  });
});

describe('LocalEngineGenerator in a worker thread', () => {
  const e = expected.models['tiny-llama']!;
  const opts = { model: e.model, adapter: e.adapter, tokenizer: TOKENIZER, contextSize: 64 };
  const reqs: GenerationRequest[] = [
    { id: 'a', messages: [{ role: 'user', content: 'sum a list' }], params: { maxTokens: 8 } },
    { id: 'b', prompt: 'def f(', params: { maxTokens: 5, stop: ['('] } },
    { id: 'long', prompt: 'x'.repeat(100) },
    { id: 'bad', prompt: 'x', system: 'no' },
  ];

  it('answers exactly as in-process (texts, failures, usage); typed load errors cross the thread', async () => {
    const inproc = new LocalEngineGenerator(opts);
    const worker = new LocalEngineGenerator({ ...opts, worker: true });
    try {
      const a = await inproc.generate(reqs);
      const b = await worker.generate(reqs);
      const strip = (rs: GenerationResult[]) => rs.map((r) => (r.ok ? { ...r, latencyMs: 0 } : r));
      assert.deepEqual(strip(b), strip(a));
      assert.ok(a[0]!.ok && !a[2]!.ok && a[2]!.kind === 'backend_error');
      await assert.rejects(worker.engine(), UnsupportedError);
    } finally {
      await inproc.dispose();
      await worker.dispose();
    }
    const [d] = await worker.generate(reqs.slice(0, 1));
    assert.ok(!d!.ok && d!.kind === 'aborted');
    const bad = new LocalEngineGenerator({ ...opts, tokenizer: e.model, worker: true });
    const across = await bad.load().then(
      () => undefined,
      (err: unknown) => err,
    );
    assert.ok(across instanceof NotFoundError && /tokenizer\.json/.test(across.message));
    await bad.dispose();
    // The same error in-process: the class, where / expected / found / hint and the printed
    // message survive the thread boundary unchanged.
    const here = new LocalEngineGenerator({ ...opts, tokenizer: e.model });
    const local = await here.load().then(
      () => undefined,
      (err: unknown) => err,
    );
    await here.dispose();
    assert.ok(local instanceof NotFoundError);
    assert.deepEqual(
      [across.where, across.expected, across.found, across.hint, across.message],
      [local.where, local.expected, local.found, local.hint, local.message],
    );
    assert.ok(
      local.where !== undefined || local.hint !== undefined,
      'the error has details to keep',
    );
  });

  it('the main thread stays responsive while the worker loads and decodes (SmolLM2)', async () => {
    const g = new LocalEngineGenerator({
      model: requireTestModel(),
      contextSize: 128,
      worker: true,
    });
    let ticks = 0;
    const timer = setInterval(() => (ticks += 1), 10);
    try {
      const [r] = await g.generate([
        {
          id: 'w',
          messages: [{ role: 'user', content: 'Sort a list.' }],
          params: { maxTokens: 4 },
        },
      ]);
      assert.ok(r!.ok, JSON.stringify(r));
      // Loading alone takes seconds; in-process the loop would be blocked the whole time and
      // the timer would tick only in the few gaps between awaits.
      assert.ok(ticks >= 20, `timer ticked ${ticks} times during load + decode`);
    } finally {
      clearInterval(timer);
      await g.dispose();
    }
  });
});

describe('PEFT module matching equals peft 0.21 (check_target_module_exists, get_pattern_key)', () => {
  it('target_modules lists and regexes, exclude_modules, layers_to_transform/layers_pattern', () => {
    for (const { config, matches } of expected.matching.targets) {
      const c = { r: 4, lora_alpha: 8, ...config } as PeftLoraConfig;
      for (const [key, want] of Object.entries(matches))
        assert.equal(isPeftTarget(c, key), want, `${JSON.stringify(config)} on ${key}; ${REGEN}`);
    }
  });
  it('rank_pattern / alpha_pattern keys', () => {
    const { patternKeys, patternOf } = expected.matching;
    // peft returns the module name itself when no key matches (then r / lora_alpha apply).
    for (const [key, want] of Object.entries(patternOf))
      assert.equal(peftPatternKey(patternKeys, key) ?? key, want, key);
  });
});

describe('PEFT adapters rl4qe refuses, with typed errors', () => {
  const e = expected.models['tiny-llama']!;
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'rl4qe-peft-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** A copy of the tiny-llama adapter with adapter_config.json changed by `edit`. */
  function variant(tag: string, edit: (c: Record<string, unknown>) => void): string {
    const d = path.join(dir, tag);
    cpSync(e.adapter, d, { recursive: true });
    const f = path.join(d, 'adapter_config.json');
    const c = JSON.parse(readFileSync(f, 'utf8')) as Record<string, unknown>;
    edit(c);
    writeFileSync(f, JSON.stringify(c));
    return d;
  }
  const make = (adapter: string) =>
    new LocalEngineGenerator({ model: e.model, adapter, tokenizer: TOKENIZER });

  it('DoRA, trained biases, modules_to_save: UnsupportedError naming the field, before loading', () => {
    const cases: [string, (c: Record<string, unknown>) => void, RegExp][] = [
      ['dora', (c) => (c.use_dora = true), /use_dora/],
      ['bias', (c) => (c.bias = 'all'), /bias/],
      ['mts', (c) => (c.modules_to_save = ['lm_head']), /modules_to_save/],
      ['alora', (c) => (c.alora_invocation_tokens = [5, 6]), /alora_invocation_tokens/],
    ];
    for (const [tag, edit, re] of cases)
      assert.throws(
        () => make(variant(tag, edit)),
        (err: unknown) => err instanceof UnsupportedError && re.test(err.message),
        tag,
      );
  });

  it('target modules the model lacks, lm_head, a wrong shape, a missing file: typed errors at load', async () => {
    const missing = make(variant('missing', (c) => (c.target_modules = ['q_proj', 'c_attn'])));
    await assert.rejects(
      missing.engine(),
      (err: unknown) => err instanceof NotFoundError && /c_attn/.test(err.message),
    );
    const head = make(variant('head', (c) => (c.target_modules = ['lm_head'])));
    await assert.rejects(head.engine(), UnsupportedError);
    // r in the config disagrees with the tensors: the error names the tensor.
    const shape = make(variant('shape', (c) => ((c.r = 3), (c.rank_pattern = {}))));
    await assert.rejects(
      shape.engine(),
      (err: unknown) =>
        err instanceof ShapeError &&
        /base_model\.model\.model\.layers\.0\.\w+\.\w+\.lora_A\.weight/.test(err.message),
    );
    // A tensor for a module the config does not target: the two files do not belong together.
    const extra = variant('extra', (c) => (c.target_modules = ['q_proj']));
    const extraGen = make(extra);
    await assert.rejects(extraGen.engine(), (err: unknown) => err instanceof FormatError);
    const none = path.join(dir, 'none');
    cpSync(e.adapter, none, { recursive: true });
    rmSync(path.join(none, 'adapter_model.safetensors'));
    assert.throws(() => make(none), NotFoundError);
    assert.throws(() => make(path.join(dir, 'nope')), NotFoundError);
  });

  it('the cache identity carries the adapter: path and content hash', () => {
    const base = make(e.adapter).identity.model;
    const copy = variant('copy', () => {});
    const f = path.join(copy, 'adapter_model.safetensors');
    const st = SafetensorsFile.open(f);
    const tensors = st.tensors.map((t) => ({
      name: t.name,
      dtype: 'F32' as const,
      shape: t.shape,
      data: st.readF32(t),
    }));
    st.close();
    const changed = variant('changed', () => {});
    tensors[0]!.data[0]! += 1e-3;
    writeSafetensors(path.join(changed, 'adapter_model.safetensors'), { tensors });
    const ids = [
      base,
      make(copy).identity.model,
      make(changed).identity.model,
      new LocalEngineGenerator({ model: e.model, tokenizer: TOKENIZER }).identity.model,
    ];
    assert.equal(new Set(ids).size, 4, ids.join('\n'));
    assert.ok(ids[0]!.includes(path.resolve(e.adapter)));
  });

  it('config: local backend options validated with the field named', () => {
    assert.throws(
      () => createGenerator({ backend: 'local', model: e.model, maxBatchSize: 0 }),
      (err: unknown) => err instanceof ConfigError && /generator\.maxBatchSize/.test(err.message),
    );
    assert.throws(
      () => createGenerator({ backend: 'local', model: '/nonexistent/model.gguf' }),
      (err: unknown) => err instanceof NotFoundError && /nonexistent/.test(err.message),
    );
    const g = createGenerator({
      backend: 'local',
      model: e.model,
      adapter: e.adapter,
      tokenizer: TOKENIZER,
      cache: { enabled: false },
    });
    assert.ok(g instanceof LocalEngineGenerator);
    assert.match(g.identity.model, /\+lora:/);
  });
});

describe('LocalEngineGenerator on SmolLM2-135M (GGUF)', () => {
  let g: LocalEngineGenerator;
  before(() => {
    g = new LocalEngineGenerator({ model: requireTestModel(), contextSize: 256, maxBatchSize: 2 });
  });
  after(async () => {
    await g.dispose();
  });
  const chat = (id: string, content: string, maxTokens = 6): GenerationRequest => ({
    id,
    system: 'You write Python.',
    messages: [{ role: 'user', content }],
    params: { maxTokens, temperature: 0 },
  });

  it('chat: text and usage; greedy is deterministic and equals generate() on the same prompt', async () => {
    const req = chat('c', 'Write a function that adds two numbers.');
    const a = ok((await g.generate([req]))[0]);
    const b = ok((await g.generate([{ ...req, id: 'c2' }]))[0]);
    assert.ok(a.text.length > 0);
    assert.equal(a.finishReason, 'length');
    assert.equal(a.usage.completionTokens, 6);
    assert.equal(b.text, a.text);
    const E = await g.engine();
    const ids = g.promptIds(E, req);
    assert.equal(a.usage.promptTokens, ids.length);
    const [d] = generate(E.model, {
      prompts: [ids],
      maxNewTokens: 6,
      temperature: 0,
      stopTokens: E.stopTokenIds,
      decode: (x) => E.tokenizer.decode(x, { skipSpecialTokens: true }),
    });
    assert.equal(a.text, d!.text);
  });

  it('a PEFT adapter on the real model (layers_to_transform): prompt ids, logits and greedy text equal PEFT on the same GGUF', async () => {
    const e = expected.smollm2;
    const a = new LocalEngineGenerator({
      model: requireTestModel(),
      adapter: e.adapter,
      contextSize: 256,
      // PEFT ran on the dequantised GGUF: compare float32 with float32 (the default, auto, keeps
      // the quantised blocks).
      weights: 'float32',
    });
    try {
      const req: GenerationRequest = {
        id: 'lora',
        messages: e.messages.filter((m) => m.role !== 'system'),
        system: e.messages.find((m) => m.role === 'system')?.content,
        params: { maxTokens: e.tokens.length, temperature: 0 },
      };
      const E = await a.engine();
      assert.deepEqual(E.stopTokenIds, e.stopTokenIds);
      assert.equal(E.adapter!.modules.length, 10); // q and v of layers 0, 6, 12, 18, 24
      const ids = a.promptIds(E, req);
      assert.deepEqual(ids, e.promptIds, `prompt ids differ; regenerate: ${REGEN}`);
      const lg = noGrad(() => {
        const T = ids.length;
        const h = E.model.forward({ ids: Int32Array.from(ids), shape: [1, T] });
        const last = reshape(slice(h, 1, T - 1, T), [1, E.config.hiddenSize]);
        return headLogits(last, E.model.headWeight()).data;
      });
      let maxBase = 0;
      e.firstLogitsTop.ids.forEach((id, i) => {
        const d = Math.abs((lg[id] as number) - e.firstLogitsTop.values[i]!);
        assert.ok(
          d < 2e-3,
          `logit of token ${id}: ${lg[id]} vs PEFT ${e.firstLogitsTop.values[i]}`,
        );
        maxBase = Math.max(maxBase, Math.abs((lg[id] as number) - e.baseFirstLogitsAtTop[i]!));
      });
      assert.ok(maxBase > 0.3, `adapter has no effect (max |Δ| to base ${maxBase})`);
      const c = ok((await a.generate([req]))[0]);
      assert.equal(c.text, e.text, `greedy text differs from PEFT's; regenerate: ${REGEN}`);
      assert.equal(c.usage.completionTokens, e.tokens.length);
      assert.equal(c.finishReason, e.finishReason);
    } finally {
      await a.dispose();
    }
  });

  it('a batch of different lengths (two chunks) equals the same requests one at a time', async () => {
    const reqs = [
      chat('s', 'Sort a list.', 5),
      chat('l', 'Read a CSV file with pandas and print the mean of every numeric column.', 5),
      chat('m', 'Reverse a string.', 5),
    ];
    const batch = (await g.generate(reqs)).map(ok);
    for (const [i, r] of reqs.entries()) {
      const one = ok((await g.generate([r]))[0]);
      assert.equal(batch[i]!.id, r.id);
      assert.equal(batch[i]!.text, one.text, r.id);
      assert.equal(batch[i]!.usage.completionTokens, one.usage.completionTokens);
    }
  });

  it('concurrent generate() calls share one batch and answer as they would alone', async () => {
    const p = chat('p', 'Sort a list.', 4);
    const q = chat('q', 'Reverse a string in Python.', 4);
    const soloP = ok((await g.generate([p]))[0]);
    const soloQ = ok((await g.generate([q]))[0]);
    const s0 = g.stats();
    const [[x], [y]] = await Promise.all([g.generate([p]), g.generate([q])]);
    const s1 = g.stats();
    assert.deepEqual([s1.batches - s0.batches, s1.sequences - s0.sequences], [1, 2]);
    assert.equal(ok(x).text, soloP.text);
    assert.equal(ok(y).text, soloQ.text);
  });

  it('stop strings cut the text; a too-long prompt is a typed failure and the rest succeed', async () => {
    const rs = await g.generate([
      {
        id: 'raw',
        prompt: 'import numpy as np\n',
        params: { maxTokens: 12, temperature: 0, stop: ['\n'] },
      },
      chat('long', 'word '.repeat(300)),
      { id: 'bad', prompt: 'x', system: 'no' },
      chat('fine', 'Print hello.', 3),
    ]);
    const raw = ok(rs[0]);
    assert.ok(!raw.text.includes('\n') && raw.text.length > 0, JSON.stringify(raw.text));
    assert.equal(raw.finishReason, 'stop');
    const long = rs[1]!;
    assert.ok(!long.ok && long.kind === 'backend_error', JSON.stringify(long));
    assert.match(long.message, /request long: the prompt has \d+ tokens; the context holds 256/);
    assert.ok(!rs[2]!.ok && rs[2]!.kind === 'bad_request');
    ok(rs[3]);
  });

  it('an aborted signal and a disposed generator give aborted failures, never text', async () => {
    const ac = new AbortController();
    ac.abort();
    const [r] = await g.generate([chat('a', 'x')], { signal: ac.signal });
    assert.ok(!r!.ok && r!.kind === 'aborted');
    const h = new LocalEngineGenerator({ model: requireTestModel() });
    await h.dispose();
    const [s] = await h.generate([chat('d', 'x')]);
    assert.ok(!s!.ok && s!.kind === 'aborted');
  });
});
