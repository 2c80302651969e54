// rl4qe bench rewards: text-reward throughput on DS-1000 pairs, ours vs the Python reference
// packages (nltk, rouge, difflib) timed in the same run on the same pairs (ratio `python`).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { loadDs1000 } from '../../data/ds1000.js';
import { bleu4, codeMetrics, f1, overlap, rougeL } from '../../rewards/text.js';
import { makeReward } from '../../rewards/factory.js';
import { Rng } from '../../util/rng.js';
import { machineInfo, timeMedian, type BenchCase, type BenchReport } from '../../util/bench.js';
import { cachePaths } from '../../util/paths.js';
import type { BenchOptions } from './index.js';

const PY = String.raw`
import json, sys, time, statistics, difflib, re, warnings
warnings.filterwarnings("ignore")
from nltk.translate.bleu_score import sentence_bleu, SmoothingFunction
from rouge import Rouge
sys.setrecursionlimit(100000)
pairs = json.load(sys.stdin)
runs = int(sys.argv[1])
sm = SmoothingFunction().method1
rg = Rouge()
RE = r'[a-zA-Z_]\w*|[-+*/=<>!&|^%(){}[\],.;:]|\d+(?:\.\d+)?'
def bleu(h, r): return sentence_bleu([r.lower().split()], h.lower().split(), weights=(0.25,)*4, smoothing_function=sm)
def rouge(h, r):
    try: return rg.get_scores(h, r)[0]['rouge-l']['f']
    except ValueError: return 0.0
def f1(h, r):
    hs, rs = set(h.lower().split()), set(r.lower().split())
    if not hs or not rs: return 0.0
    c = hs & rs; p = len(c)/len(hs); q = len(c)/len(rs)
    return 0.0 if p + q == 0 else 2*p*q/(p+q)
def overlap(h, r):
    hs, rs = set(h.lower().split()), set(r.lower().split())
    return 0.0 if not rs else len(hs & rs)/len(rs)
def css(h, r):
    if not h or not r: return 0.0
    return difflib.SequenceMatcher(None, re.findall(RE, h.strip().lower()), re.findall(RE, r.strip().lower())).ratio()
out = {}
for name, fn in [('bleu', bleu), ('rouge_l', rouge), ('f1', f1), ('overlap', overlap), ('css', css)]:
    ts = []
    for _ in range(runs + 1):
        t0 = time.perf_counter()
        for h, r in pairs: fn(h, r)
        ts.append(time.perf_counter() - t0)
    out[name] = statistics.median(ts[1:])
print(json.dumps(out))
`;

export async function benchRewards(opts: BenchOptions): Promise<BenchReport> {
  const ds = await loadDs1000();
  const rng = new Rng(5);
  // Shaped like training: K = 8 generated candidates per reference. The candidates are other
  // DS-1000 texts: perturbation siblings' references (similar code), random references, and
  // one prompt per reference (long, mostly prose).
  const K = 8;
  const nRefs = opts.quick ? 25 : 125;
  const n = nRefs * K;
  const pairs: [string, string][] = [];
  for (let q = 0; q < nRefs; q++) {
    const a = ds[rng.int(ds.length)]!;
    const sib = ds.filter(
      (p) =>
        p.metadata.library === a.metadata.library &&
        p.metadata.perturbationOriginId === a.metadata.perturbationOriginId,
    );
    for (let k = 0; k < K; k++) {
      const h =
        k === 0
          ? a.prompt
          : k < 5 && sib.length > 1
            ? sib[rng.int(sib.length)]!.referenceCode
            : ds[rng.int(ds.length)]!.referenceCode;
      pairs.push([h, a.referenceCode]);
    }
  }
  const runs = opts.quick ? 3 : 5;
  const ours: Record<string, (h: string, r: string) => number> = {
    bleu: (h, r) => bleu4(h, r),
    rouge_l: (h, r) => rougeL(h, r),
    f1: (h, r) => f1(h, r),
    overlap: (h, r) => overlap(h, r),
    css: (h, r) => codeMetrics(h, r).css,
  };
  const py = path.join(cachePaths.oracleVenv(), 'bin', 'python');
  let pyTimes: Record<string, number> | undefined;
  if (existsSync(py)) {
    opts.log(`timing the Python packages (${py}) on ${n} pairs`);
    const r = spawnSync(py, ['-c', PY, String(runs)], {
      input: JSON.stringify(pairs),
      encoding: 'utf8',
      maxBuffer: 1 << 24,
    });
    if (r.status === 0)
      pyTimes = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, number>;
    else opts.log(`python baseline failed: ${r.stderr.slice(-500)}`);
  } else opts.log(`no oracle venv at ${py}: reporting rl4qe numbers only`);
  const cases: BenchCase[] = [];
  for (const [name, fn] of Object.entries(ours)) {
    const t = await timeMedian(() => {
      for (const [h, r] of pairs) fn(h, r);
    }, runs);
    const c: BenchCase = {
      case: `${name} ds1000 pairs`,
      value: n / t,
      unit: 'pairs/s',
      ratios: {},
    };
    if (pyTimes?.[name] !== undefined) {
      c.ratios.python = pyTimes[name]! / t;
      c.extra = { pythonPairsPerSec: n / pyTimes[name]! };
    }
    cases.push(c);
    opts.log(`${name}: ${(n / t).toFixed(0)} pairs/s`);
  }
  // The training path: all five text rewards through makeReward() on one batch (references
  // prepared once per K candidates), against the sum of the five Python per-pair times.
  const composite = makeReward({ weights: { bleu: 1 } });
  const batch = pairs.map(([h, r]) => ({ query: '', code: h, reference: r }));
  const tc = await timeMedian(() => composite.score(batch), runs);
  const cc: BenchCase = {
    case: 'all five via makeReward, K=8',
    value: n / tc,
    unit: 'samples/s',
    ratios: {},
  };
  if (pyTimes && Object.keys(ours).every((k) => pyTimes![k] !== undefined)) {
    const pySum = Object.keys(ours).reduce((acc, k) => acc + pyTimes![k]!, 0);
    cc.ratios.python = pySum / tc;
    cc.extra = { pythonSamplesPerSec: n / pySum };
  }
  cases.push(cc);
  opts.log(`all five (makeReward): ${(n / tc).toFixed(0)} samples/s`);
  return { bench: 'rewards', machine: machineInfo({ pairs: n, k: K }), cases };
}
