// rl4qe bench block: forward and forward+backward time of the Llama-style block (hidden 576,
// 9 heads, 3 KV heads, MLP 1536, LoRA r=8 on q,k,v,o; batch 1, sequence 256) on the native
// backend, with ratios `reference` (same code on the reference backend) and `pytorch` (PyTorch
// CPU doing the identical computation: scripts/bench_block_torch.py, run as a subprocess with the
// oracle venv's python or python3). Ratios are baseline time / our time, so > 1 means faster.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { backendInfo, noGrad, setBackend, tidy } from '../../tensor/index.js';
import { buildBlockFixture } from '../../models/block-fixture.js';
import { cachePaths } from '../../util/paths.js';
import {
  machineInfo,
  median,
  timeMedian,
  type BenchCase,
  type BenchReport,
} from '../../util/bench.js';
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

interface TorchRunner {
  /** One timing round (the script's own median of `runs`), or null if it failed. */
  round(): Promise<Timing | null>;
  close(): void;
  note: string;
}

/**
 * Starts scripts/bench_block_torch.py in --serve mode: it builds the layer once and times one
 * round per request, so PyTorch rounds can alternate with ours under the same machine load (on
 * a shared machine the load moves by 2× within a minute). Null, with a note, when torch is
 * missing.
 */
async function startTorch(
  seq: number,
  runs: number,
  threads: number,
): Promise<{ runner: TorchRunner | null; note: string }> {
  const script = path.join(ROOT, 'scripts', 'bench_block_torch.py');
  const venvPy = path.join(cachePaths.oracleVenv(), 'bin', 'python');
  const py = existsSync(venvPy) ? venvPy : 'python3';
  const args = [script, '--seq', String(seq), '--runs', String(runs)];
  const child = spawn(py, [...args, '--threads', String(threads), '--serve'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: child.stdout });
  const queue: string[] = [];
  let waiting: ((l: string | null) => void) | null = null;
  lines.on('line', (l) => {
    if (waiting) {
      const w = waiting;
      waiting = null;
      w(l);
    } else queue.push(l);
  });
  const ended = new Promise<null>((resolve) => child.on('close', () => resolve(null)));
  ended.then(
    () => waiting?.(null),
    () => undefined,
  );
  const next = (): Promise<string | null> => {
    const q = queue.shift();
    if (q !== undefined) return Promise.resolve(q);
    if (child.exitCode !== null) return Promise.resolve(null);
    return new Promise((resolve) => (waiting = resolve));
  };
  const fail = (): { runner: null; note: string } => {
    const why = (stderr.trim().split('\n').slice(-1)[0] ?? '') || 'no output';
    child.kill();
    return {
      runner: null,
      note: `pytorch ratio skipped: ${py} ${path.basename(script)} failed (${why}); install torch, transformers and peft (the oracle venv) to get it`,
    };
  };
  const ready = await next();
  if (ready === null || !ready.includes('ready')) return fail();
  let last = '';
  const runner: TorchRunner = {
    note: '',
    async round() {
      child.stdin.write('go\n');
      const l = await next();
      if (l === null) return null;
      last = l;
      const j = JSON.parse(l) as { forward_s: number; forward_backward_s: number; loss: number };
      runner.note = `pytorch: ${py}, ${threads} threads, ${last}`;
      return { forward: j.forward_s, forwardBackward: j.forward_backward_s, loss: j.loss };
    },
    close() {
      child.stdin.end('quit\n');
    },
  };
  return { runner, note: '' };
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
  // Rounds of ours and PyTorch alternate (each round is a median of `runs`); the reported times
  // are medians over rounds and the ratio is the median of the per-round ratios.
  const rounds = opts.quick ? 1 : 3;
  const threads = ours === 'native' ? info.threads : 1;
  const torchStart = await startTorch(seq, runs, Math.max(1, threads));
  const torch = torchStart.runner;
  if (!torch) notes.push(torchStart.note);
  const mine: Timing[] = [];
  const theirs: Timing[] = [];
  const pairs: Array<[Timing, Timing]> = [];
  for (let r = 0; r < rounds; r++) {
    opts.log(`block: round ${r + 1}/${rounds}: ${ours}`);
    setBackend(ours);
    mine.push(await timeBlock(seq, runs));
    setBackend(startBackend);
    if (torch) {
      opts.log(`block: round ${r + 1}/${rounds}: pytorch`);
      const tt = await torch.round();
      if (tt) {
        theirs.push(tt);
        pairs.push([tt, mine[mine.length - 1] as Timing]);
      }
    }
  }
  torch?.close();
  if (torch && theirs.length < rounds) notes.push('pytorch: a round failed; ratio over the rest');
  if (torch?.note) notes.push(torch.note);
  const med = (xs: Timing[], key: keyof Timing): number => median(xs.map((x) => x[key]));
  const t: Timing = {
    forward: med(mine, 'forward'),
    forwardBackward: med(mine, 'forwardBackward'),
    loss: mine[mine.length - 1]?.loss ?? NaN,
  };
  const tTorch: Timing | null =
    theirs.length > 0
      ? {
          forward: med(theirs, 'forward'),
          forwardBackward: med(theirs, 'forwardBackward'),
          loss: theirs[theirs.length - 1]?.loss ?? NaN,
        }
      : null;
  const pairedRatio = (key: 'forward' | 'forwardBackward'): number =>
    median(pairs.map(([them, us]) => them[key] / us[key]));
  let ref: Timing | null = null;
  if (ours === 'native') {
    opts.log('block: reference backend');
    setBackend('reference');
    ref = await timeBlock(seq, opts.quick ? 1 : 3);
  }
  setBackend(startBackend);
  if (tTorch && Math.abs(tTorch.loss - t.loss) > 1e-4 * Math.abs(t.loss)) {
    notes.push(`WARNING: pytorch loss ${tTorch.loss} differs from ours ${t.loss}`);
  }

  const mk = (
    id: 'forward' | 'forward+backward',
    key: 'forward' | 'forwardBackward',
  ): BenchCase => {
    const ratios: Record<string, number> = {};
    if (ref) ratios.reference = ref[key] / t[key];
    if (tTorch) ratios.pytorch = pairedRatio(key);
    return {
      case: `block/seq${seq}/${id}`,
      value: t[key] * 1000,
      unit: 'ms',
      ratios,
      extra: {
        backend: ours,
        ...(ref ? { referenceMs: ref[key] * 1000 } : {}),
        ...(tTorch ? { pytorchMs: tTorch[key] * 1000 } : {}),
        rounds,
      },
    };
  };
  return {
    bench: 'block',
    machine: machineInfo({ backend: ours, threads: info.threads, notes }),
    cases: [mk('forward', 'forward'), mk('forward+backward', 'forwardBackward')],
  };
}
