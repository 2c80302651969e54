// rl4qe bench rewards: text-reward throughput (pairs/s) on DS-1000 pairs (each reference against
// a perturbation sibling's or a random problem's reference, and prompt-vs-reference pairs), ours
// vs the Python reference packages (nltk, rouge, difflib) timed in the same run (ratio `python`).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { loadDs1000 } from '../../data/ds1000.js';
import { bleu4, codeMetrics, f1, overlap, rougeL } from '../../rewards/text.js';
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
  const n = opts.quick ? 200 : 1000;
  const pairs: [string, string][] = [];
  for (let i = 0; i < n; i++) {
    const a = ds[rng.int(ds.length)]!;
    const kind = i % 10;
    if (kind === 0) pairs.push([a.prompt, a.referenceCode]);
    else {
      const sib = ds.filter(
        (p) =>
          p.metadata.library === a.metadata.library &&
          p.metadata.perturbationOriginId === a.metadata.perturbationOriginId,
      );
      const b = kind < 6 && sib.length > 1 ? sib[rng.int(sib.length)]! : ds[rng.int(ds.length)]!;
      pairs.push([a.referenceCode, b.referenceCode]);
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
  return { bench: 'rewards', machine: machineInfo({ pairs: n }), cases };
}
