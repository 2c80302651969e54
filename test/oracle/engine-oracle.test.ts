// The engine against PyTorch / transformers (the outside oracle), float64 on reference.
// Fixture: test/fixtures/engine/oracle.json, written by scripts/fixtures_engine.py.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as T from '../../src/tensor/index.js';
import { referenceBackend } from '../../src/backend/index.js';

const REGEN = 'regenerate with: ~/.cache/rl4qe/oracle/bin/python scripts/fixtures_engine.py';
const fx = JSON.parse(
  readFileSync(new URL('../../../test/fixtures/engine/oracle.json', import.meta.url), 'utf8'),
) as Record<string, Record<string, unknown>>;

T.setBackend('reference');

function vals(n: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => Math.sin(seed * 1.7 + i * 0.731));
}

function t(shape: number[], seed: number, requiresGrad = true): T.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return T.tensor(vals(n, seed), shape, { dtype: 'f64', requiresGrad });
}

function close(name: string, ours: ArrayLike<number>, theirs: number[], tol = 1e-9): void {
  assert.equal(ours.length, theirs.length, `${name}: length (${REGEN})`);
  for (let i = 0; i < theirs.length; i++) {
    const e = Math.abs(ours[i] - theirs[i]);
    assert.ok(
      e <= tol * Math.max(1, Math.abs(theirs[i])),
      `${name}[${i}]: ours ${ours[i]} vs PyTorch ${theirs[i]} (${REGEN})`,
    );
  }
}

test('RoPE inverse frequencies and attention factor match transformers (default, linear, llama3, yarn)', () => {
  const tables = fx.rope_tables as Record<
    string,
    { params: Record<string, number>; inv_freq: number[]; attention_factor: number }
  >;
  for (const [name, c] of Object.entries(tables)) {
    const p = c.params;
    const scaling: T.RopeScaling | null =
      name === 'linear'
        ? { type: 'linear', factor: p.factor }
        : name === 'llama3'
          ? {
              type: 'llama3',
              factor: p.factor,
              lowFreqFactor: p.low_freq_factor,
              highFreqFactor: p.high_freq_factor,
              originalMaxPositions: p.original_max_position_embeddings,
            }
          : name === 'yarn'
            ? {
                type: 'yarn',
                factor: p.factor,
                originalMaxPositions: p.original_max_position_embeddings,
              }
            : null;
    const r = T.ropeInvFreq({ headDim: 16, theta: p.rope_theta, maxPositions: 1, scaling });
    // transformers computes inv_freq in float32.
    close(`rope ${name} inv_freq`, r.invFreq, c.inv_freq, 1e-6);
    close(`rope ${name} attention factor`, [r.attentionFactor], [c.attention_factor], 1e-12);
  }
});

test('rope matches transformers apply_rotary_pos_emb (rotate-half)', () => {
  const c = fx.rope_apply as { shape: number[]; seed: number; positions: number[]; out: number[] };
  const table = T.ropeTable({ headDim: 8, theta: 10000, maxPositions: 32 });
  const y = T.rope(t(c.shape, c.seed, false), table, Int32Array.from(c.positions));
  close('rope', y.data, c.out, 1e-12);
});

test('GQA causal attention with a KV offset: output and gradients match PyTorch SDPA', () => {
  const c = fx.attention as {
    q: number[];
    k: number[];
    seeds: number[];
    out: number[];
    gq: number[];
    gk: number[];
    gv: number[];
  };
  const q = t(c.q, c.seeds[0]);
  const k = t(c.k, c.seeds[1]);
  const v = t(c.k, c.seeds[2]);
  const o = T.attention(q, k, v, { causal: true });
  close('attention out', o.data, c.out);
  o.backward(t(c.q, c.seeds[3], false));
  close('attention gq', q.grad!.data, c.gq);
  close('attention gk', k.grad!.data, c.gk);
  close('attention gv', v.grad!.data, c.gv);
});

test('rmsNorm and tokenLogProbs: outputs and gradients match PyTorch', () => {
  const r = fx.rmsnorm as {
    x: number[];
    seeds: number[];
    eps: number;
    out: number[];
    gx: number[];
    gw: number[];
  };
  const x = t(r.x, r.seeds[0]);
  const w = t([r.x[1]], r.seeds[1]);
  const y = T.rmsNorm(x, w, r.eps);
  close('rmsnorm out', y.data, r.out);
  y.backward(t(r.x, r.seeds[2], false));
  close('rmsnorm gx', x.grad!.data, r.gx);
  close('rmsnorm gw', w.grad!.data, r.gw);

  const c = fx.token_logprobs as {
    h: number[];
    w: number[];
    seeds: number[];
    targets: number[];
    out: number[];
    gh: number[];
    gw: number[];
  };
  const h = t(c.h, c.seeds[0]);
  const W = t(c.w, c.seeds[1]);
  const lp = T.tokenLogProbs(h, W, Int32Array.from(c.targets), { chunkRows: 3 });
  close('tokenLogProbs out', lp.data, c.out);
  lp.backward(t([c.h[0]], c.seeds[2], false));
  close('tokenLogProbs gh', h.grad!.data, c.gh);
  close('tokenLogProbs gw', W.grad!.data, c.gw);
});

test('adamw kernel matches torch.optim.AdamW over three steps', () => {
  const c = fx.adamw as {
    p0: number[];
    grads: number[][];
    lr: number;
    beta1: number;
    beta2: number;
    eps: number;
    weight_decay: number;
    p3: number[];
  };
  const p = Float64Array.from(c.p0);
  const m = new Float64Array(p.length);
  const v = new Float64Array(p.length);
  c.grads.forEach((g, i) =>
    referenceBackend.adamw(p, Float64Array.from(g), m, v, {
      lr: c.lr,
      beta1: c.beta1,
      beta2: c.beta2,
      eps: c.eps,
      weightDecay: c.weight_decay,
      step: i + 1,
    }),
  );
  close('adamw p3', p, c.p3, 1e-12);
});
