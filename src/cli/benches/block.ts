// rl4qe bench block: forward and forward+backward time of the Llama-style block (hidden 576,
// 9 heads, 3 KV heads, MLP 1536, LoRA r=8 on q,k,v,o; batch 1, sequence 256) on the native
// backend, with ratios `reference` (same code on the reference backend) and `pytorch` (PyTorch
// CPU doing the identical computation: scripts/bench_block_torch.py, run as a subprocess with the
// oracle venv's python or python3). Ratios are baseline time / our time, so > 1 means faster.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { backendInfo, noGrad, setBackend, tidy } from '../../tensor/index.js';
import { buildBlockFixture } from '../../models/block-fixture.js';
import { cachePaths } from '../../util/paths.js';
import { machineInfo, timeMedian, type BenchCase, type BenchReport } from '../../util/bench.js';
import type { BenchOptions } from './index.js';

interface Timing {
  forward: number;
  forwardBackward: number;
  loss: number;
}

async function timeBlock(seq: number, runs: number): Promise<Timing> {
  const f = buildBlockFixture({ seq });
  // tidy releases the intermediates at once (as inference code does), so their native memory
  // goes back to the pool instead of waiting for the garbage collector.
  const forward = await timeMedian(
    () =>
      tidy(() =>
        noGrad(() => {
          f.forward();
        }),
      ),
    runs,
    1,
  );
  let loss = NaN;
  const forwardBackward = await timeMedian(
    () => {
      for (const p of f.lora.values()) p.zeroGrad();
      const l = f.loss();
      l.backward();
      loss = l.item();
      l.release();
    },
    runs,
    1,
  );
  return { forward, forwardBackward, loss };
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');

function torchBaseline(
  seq: number,
  runs: number,
  threads: number,
): { t: Timing | null; note: string } {
  const script = path.join(ROOT, 'scripts', 'bench_block_torch.py');
  const venvPy = path.join(cachePaths.oracleVenv(), 'bin', 'python');
  const py = existsSync(venvPy) ? venvPy : 'python3';
  const r = spawnSync(
    py,
    [script, '--seq', String(seq), '--runs', String(runs), '--threads', String(threads)],
    { encoding: 'utf8', timeout: 600_000 },
  );
  if (r.status !== 0) {
    const why = (r.stderr || String(r.error ?? '')).trim().split('\n').slice(-1)[0] ?? '';
    return {
      t: null,
      note: `pytorch ratio skipped: ${py} ${path.basename(script)} failed (${why}); install torch, transformers and peft (the oracle venv) to get it`,
    };
  }
  const last = r.stdout.trim().split('\n').slice(-1)[0] ?? '{}';
  const j = JSON.parse(last) as { forward_s: number; forward_backward_s: number; loss: number };
  return {
    t: { forward: j.forward_s, forwardBackward: j.forward_backward_s, loss: j.loss },
    note: `pytorch: ${py}, ${threads} threads, ${last}`,
  };
}

export async function benchBlock(opts: BenchOptions): Promise<BenchReport> {
  const seq = opts.quick ? 64 : 256;
  const runs = opts.quick ? 2 : 5;
  const startBackend = backendInfo().name;
  const info = backendInfo();
  const ours = info.nativeAvailable ? 'native' : 'reference';
  const notes: string[] = [];
  if (!info.nativeAvailable)
    notes.push(`native backend unavailable (${info.nativeReason}): timing reference`);

  opts.log(`block: seq ${seq}, ${runs} runs, ${ours} backend`);
  setBackend(ours);
  const t = await timeBlock(seq, runs);
  let ref: Timing | null = null;
  if (ours === 'native') {
    opts.log('block: reference backend');
    setBackend('reference');
    ref = await timeBlock(seq, opts.quick ? 1 : 3);
  }
  setBackend(startBackend);
  opts.log('block: pytorch');
  const threads = ours === 'native' ? info.threads : 1;
  const torch = torchBaseline(seq, runs, Math.max(1, threads));
  notes.push(torch.note);
  if (torch.t && Math.abs(torch.t.loss - t.loss) > 1e-4 * Math.abs(t.loss)) {
    notes.push(`WARNING: pytorch loss ${torch.t.loss} differs from ours ${t.loss}`);
  }

  const mk = (id: 'forward' | 'forward+backward', key: keyof Timing): BenchCase => {
    const ratios: Record<string, number> = {};
    if (ref) ratios.reference = ref[key] / t[key];
    if (torch.t) ratios.pytorch = torch.t[key] / t[key];
    return {
      case: `block/seq${seq}/${id}`,
      value: t[key] * 1000,
      unit: 'ms',
      ratios,
      extra: {
        backend: ours,
        ...(ref ? { referenceMs: ref[key] * 1000 } : {}),
        ...(torch.t ? { pytorchMs: torch.t[key] * 1000 } : {}),
      },
    };
  };
  return {
    bench: 'block',
    machine: machineInfo({ backend: ours, threads: info.threads, notes }),
    cases: [mk('forward', 'forward'), mk('forward+backward', 'forwardBackward')],
  };
}
