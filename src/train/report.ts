// RUN_DIR/report.html: one self-contained page that says how a training run went. It opens
// offline (no CDN, fonts or scripts: inline CSS, inline SVG drawn by util/svg-chart.ts), in light
// and dark mode, and shows everything a person asks of an RL run: did reward go up, which reward
// components moved, what validation said, whether the update was healthy (loss, KL, gradient
// norm, rewrite length), where the time went, what the generator cost, and what the refiner
// actually wrote at its best, at its worst, and before vs after training.
//
// Everything that came from users or models (queries, rewrites, code, task ids, config values) is
// HTML-escaped: rewrites routinely contain `<`, `&` and, sooner or later, `</script>`.
import {
  closeSync,
  existsSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  statSync,
  writeFileSync,
  unlinkSync,
} from 'node:fs';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { FormatError, NotFoundError } from '../util/errors.js';
import {
  barChart,
  chartCss,
  defaultSmoothing,
  escapeHtml,
  formatValue,
  lineChart,
  stackedBar,
  type LineSeries,
} from '../util/svg-chart.js';
import {
  RUN_VERSION,
  type MetricsRecord,
  type RunInfo,
  type SampleRecord,
  type StepRecord,
  type ValRecord,
} from './records.js';

export interface ReportInput {
  run: RunInfo | null;
  /** The resolved config (config.json), shown as pretty JSON; null when absent. */
  config: unknown;
  metrics: MetricsRecord[];
  /**
   * The samples to draw the tables from. renderReport ranks and counts these itself; writeReport
   * streams samples.jsonl and passes only the samples the tables show, with `sampleSummary`.
   */
  samples: SampleRecord[];
  title?: string;
  /** The run directory, shown in the header. */
  runDir?: string;
  /** Problems met while reading the run directory (a skipped truncated line), shown on top. */
  warnings?: string[];
  /** Counts and selections over the whole samples file, when `samples` holds only a selection. */
  sampleSummary?: SampleSummary;
}

/** How many rewrites the best and the worst table each show. */
export const TABLE_ROWS = 10;
/** How many tasks the "first vs last" section compares. */
export const CHANGED_TASKS = 4;

/** What the sample tables need, computed in one streaming pass (plus one for first vs last). */
export interface SampleSummary {
  /** Every sample in the file, validation included. */
  total: number;
  validation: number;
  /** Training samples left out of the update, by reason. */
  dropped: Record<string, number>;
  /** Highest total reward first; training samples with a non-null total only. */
  best: SampleRecord[];
  /** Lowest total reward first. */
  worst: SampleRecord[];
  /** Tasks seen at two different steps: their rewrites at the first and the last of those steps. */
  changed: ChangedTask[];
}

export interface ChangedTask {
  task: string;
  first: { step: number; samples: SampleRecord[] };
  last: { step: number; samples: SampleRecord[] };
}

// ---------------------------------------------------------------------------------------------
// Sample ranking, usable on a stream (writeReport) or an array (renderReport).

function byBest(a: SampleRecord, b: SampleRecord): number {
  return (
    (b.total as number) - (a.total as number) || a.step - b.step || cmp(a.task, b.task) || a.k - b.k
  );
}
function byWorst(a: SampleRecord, b: SampleRecord): number {
  return (
    (a.total as number) - (b.total as number) || a.step - b.step || cmp(a.task, b.task) || a.k - b.k
  );
}
function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Keeps the n first of a stream under `order`, in order, in O(n) memory. */
function keepTop(list: SampleRecord[], s: SampleRecord, n: number, order: typeof byBest): void {
  if (list.length === n && order(s, list[n - 1]) >= 0) return;
  let i = list.length;
  while (i > 0 && order(s, list[i - 1]) < 0) i--;
  list.splice(i, 0, s);
  if (list.length > n) list.pop();
}

const isTraining = (s: SampleRecord): boolean => s.validation !== true;

/**
 * Two passes over the samples: the first counts, ranks and finds each task's first and last
 * step; the second collects the rewrites of the chosen tasks at those two steps. `pass` is called
 * twice and must yield the same samples both times (an array, or a file read twice).
 */
export function summariseSamples(pass: () => Iterable<SampleRecord>): SampleSummary {
  const sum: SampleSummary = {
    total: 0,
    validation: 0,
    dropped: {},
    best: [],
    worst: [],
    changed: [],
  };
  const span = new Map<string, { min: number; max: number }>();
  for (const s of pass()) {
    sum.total++;
    if (!isTraining(s)) {
      sum.validation++;
      continue;
    }
    if (s.dropped) sum.dropped[s.dropped] = (sum.dropped[s.dropped] ?? 0) + 1;
    if (num(s.total) !== null) {
      keepTop(sum.best, s, TABLE_ROWS, byBest);
      keepTop(sum.worst, s, TABLE_ROWS, byWorst);
    }
    const sp = span.get(s.task);
    if (!sp) span.set(s.task, { min: s.step, max: s.step });
    else {
      sp.min = Math.min(sp.min, s.step);
      sp.max = Math.max(sp.max, s.step);
    }
  }
  // The tasks whose first and last appearance lie furthest apart show the most of what changed.
  const chosen = [...span.entries()]
    .filter(([, sp]) => sp.max > sp.min)
    .sort((a, b) => b[1].max - b[1].min - (a[1].max - a[1].min) || cmp(a[0], b[0]))
    .slice(0, CHANGED_TASKS);
  if (chosen.length === 0) return sum;
  const byTask = new Map<string, ChangedTask>();
  for (const [task, sp] of chosen) {
    byTask.set(task, {
      task,
      first: { step: sp.min, samples: [] },
      last: { step: sp.max, samples: [] },
    });
  }
  for (const s of pass()) {
    if (!isTraining(s)) continue;
    const c = byTask.get(s.task);
    if (!c) continue;
    if (s.step === c.first.step) c.first.samples.push(s);
    else if (s.step === c.last.step) c.last.samples.push(s);
  }
  for (const c of byTask.values()) {
    c.first.samples.sort((a, b) => a.k - b.k);
    c.last.samples.sort((a, b) => a.k - b.k);
  }
  sum.changed = [...byTask.values()];
  return sum;
}

// ---------------------------------------------------------------------------------------------
// Reading the run directory.

/**
 * Lines of a file read synchronously in 1 MiB chunks: samples.jsonl of a long run is hundreds of
 * megabytes and must not become one string.
 */
function* readLinesSync(file: string): Generator<{ line: number; text: string }> {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    const dec = new StringDecoder('utf8');
    let rest = '';
    let line = 0;
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      rest += dec.write(buf.subarray(0, n));
      let start = 0;
      let nl: number;
      while ((nl = rest.indexOf('\n', start)) >= 0) {
        line++;
        yield { line, text: rest.slice(start, nl).replace(/\r$/, '') };
        start = nl + 1;
      }
      rest = rest.slice(start);
    }
    rest += dec.end();
    if (rest !== '') yield { line: line + 1, text: rest };
  } finally {
    closeSync(fd);
  }
}

/**
 * Parsed JSON lines. A line that does not parse is forgiven only when it is the last one (a run
 * killed mid-write leaves exactly that); it is skipped and reported through `warnings`. Anywhere
 * else it means the file is damaged, and guessing would hide that.
 */
function* readJsonlSync(
  file: string,
  warnings: string[] | null,
): Generator<{ line: number; value: unknown }> {
  let bad: { line: number; message: string; text: string } | null = null;
  for (const { line, text } of readLinesSync(file)) {
    if (text.trim() === '') continue;
    if (bad) {
      throw new FormatError('line is not valid JSON', {
        where: `${file}:${bad.line}`,
        expected:
          'one JSON record per line (only the last line may be incomplete, from a killed run)',
        found: `${bad.message}; text starts ${JSON.stringify(bad.text.slice(0, 60))}`,
        hint: 'the file is damaged in the middle; remove or repair that line and run `rl4qe report` again',
      });
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      bad = { line, message: (e as Error).message, text };
      continue;
    }
    yield { line, value };
  }
  if (bad && warnings) {
    warnings.push(
      `${path.basename(file)}: the last line (line ${bad.line}, ${bad.text.length} characters) is incomplete — ` +
        'the run was probably killed while writing it — and was skipped.',
    );
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function readMetrics(file: string, warnings: string[]): MetricsRecord[] {
  const out: MetricsRecord[] = [];
  const unknown = new Map<string, number>();
  for (const { line, value } of readJsonlSync(file, warnings)) {
    if (!isObject(value) || typeof value.step !== 'number' || typeof value.type !== 'string') {
      throw new FormatError('invalid metrics record', {
        where: `${file}:${line}`,
        expected: "an object with type ('step' or 'val') and a numeric step (train/records.ts)",
        found: JSON.stringify(value).slice(0, 80),
      });
    }
    if (value.type === 'step' || value.type === 'val') out.push(value as unknown as MetricsRecord);
    else unknown.set(value.type, (unknown.get(value.type) ?? 0) + 1);
  }
  for (const [t, n] of unknown) {
    warnings.push(
      `metrics.jsonl: ${n} record(s) of unknown type '${t}' were not shown (written by a newer rl4qe?).`,
    );
  }
  return out;
}

function* readSamples(file: string, warnings: string[] | null): Generator<SampleRecord> {
  for (const { line, value } of readJsonlSync(file, warnings)) {
    if (!isObject(value) || typeof value.step !== 'number' || typeof value.task !== 'string') {
      throw new FormatError('invalid sample record', {
        where: `${file}:${line}`,
        expected: 'an object with a string task and a numeric step (train/records.ts SampleRecord)',
        found: JSON.stringify(value).slice(0, 80),
      });
    }
    yield value as unknown as SampleRecord;
  }
}

function readJsonFile(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new FormatError('not valid JSON', { where: file, found: (e as Error).message, cause: e });
  }
}

/** Reads a run directory into a ReportInput (samples reduced to what the tables show). */
export function readRunDir(runDir: string): ReportInput {
  let isDir = false;
  try {
    isDir = statSync(runDir).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) {
    throw new NotFoundError('run directory not found', {
      where: runDir,
      expected: 'a directory written by `rl4qe train` (run.json, metrics.jsonl, samples.jsonl)',
      hint: 'pass the run directory itself, e.g. runs/2026-12-01-ds1000',
    });
  }
  const warnings: string[] = [];
  const runFile = path.join(runDir, 'run.json');
  let run: RunInfo | null = null;
  if (existsSync(runFile)) {
    const v = readJsonFile(runFile);
    if (!isObject(v) || v.version !== RUN_VERSION) {
      throw new FormatError('unsupported run directory version', {
        where: runFile,
        expected: `version ${RUN_VERSION}`,
        found: isObject(v) ? `version ${JSON.stringify(v.version)}` : typeof v,
        hint: 'write the report with the rl4qe version that made the run',
      });
    }
    run = v as unknown as RunInfo;
  } else warnings.push('run.json is missing: the base model and commit are unknown.');
  const configFile = path.join(runDir, 'config.json');
  const config = existsSync(configFile) ? readJsonFile(configFile) : null;
  const metricsFile = path.join(runDir, 'metrics.jsonl');
  const metrics = existsSync(metricsFile) ? readMetrics(metricsFile, warnings) : [];
  const samplesFile = path.join(runDir, 'samples.jsonl');
  let first = true;
  const summary = existsSync(samplesFile)
    ? summariseSamples(() => {
        // Only the first pass reports a skipped line; the second reads the same file again.
        const w = first ? warnings : null;
        first = false;
        return readSamples(samplesFile, w);
      })
    : undefined;
  return { run, config, metrics, samples: [], runDir, warnings, sampleSummary: summary };
}

/**
 * Reads RUN_DIR, writes RUN_DIR/report.html atomically (a temporary file renamed over the old
 * report, so a browser or a concurrent reader never sees half a page) and returns its path.
 */
export function writeReport(runDir: string): string {
  const html = renderReport(readRunDir(runDir));
  const out = path.join(runDir, 'report.html');
  const tmp = `${out}.tmp-${process.pid}-${Date.now()}`;
  try {
    writeFileSync(tmp, html);
    renameSync(tmp, out);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // Nothing to clean up.
    }
    throw e;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Rendering.

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** One record per step: a resumed run re-writes the steps after its checkpoint; the last wins. */
function lastPerStep<T extends { step: number }>(rs: T[]): T[] {
  const m = new Map<number, T>();
  for (const r of rs) m.set(r.step, r);
  return [...m.values()].sort((a, b) => a.step - b.step);
}

function seconds(s: number | null): string {
  if (s === null) return '–';
  if (s < 60) return `${s.toFixed(1)} s`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.round(s % 60);
  return h > 0 ? `${h} h ${m} min` : `${m} min ${sec} s`;
}

function mean(xs: (number | null)[]): number | null {
  const v = xs.filter((x): x is number => x !== null);
  return v.length === 0 ? null : v.reduce((a, b) => a + b, 0) / v.length;
}

function sumOf(xs: (number | null)[]): number {
  return xs.reduce<number>((a, b) => a + (b ?? 0), 0);
}

const e = escapeHtml;

/** Text cut to n characters, the whole text one click away. */
function clip(text: string | null | undefined, n: number): string {
  if (text === null || text === undefined) return '<span class="dim">–</span>';
  const t = String(text);
  if (t.length <= n && !t.includes('\n')) return `<span class="txt">${e(t)}</span>`;
  // The summary is the text's start with its line breaks folded, so a query that opens with
  // "Problem:\n" still says what it is about.
  const head = t.replace(/\s+/g, ' ').trim().slice(0, n);
  return `<details><summary>${e(head)}…</summary><pre>${e(t)}</pre></details>`;
}

function codeCell(code: string | null | undefined): string {
  if (code === null || code === undefined) return '<span class="dim">no code</span>';
  const lines = code.split('\n').length;
  return `<details><summary>${lines} line${lines === 1 ? '' : 's'}</summary><pre>${e(code)}</pre></details>`;
}

function rewardCell(s: SampleRecord): string {
  const comps = Object.entries(s.components ?? {})
    .map(([k, v]) => `${e(k)} ${formatValue(num(v))}`)
    .join(' · ');
  return `<b>${formatValue(num(s.total))}</b>${comps ? `<br><span class="dim">${comps}</span>` : ''}`;
}

function outcomeCell(s: SampleRecord): string {
  const parts: string[] = [];
  if (s.outcome) parts.push(e(s.outcome));
  if (s.dropped) parts.push(`<span class="bad">dropped: ${e(s.dropped)}</span>`);
  if (s.finishReason && s.finishReason !== 'stop' && s.finishReason !== 'eos') {
    parts.push(`<span class="dim">${e(s.finishReason)}</span>`);
  }
  return parts.length ? parts.join('<br>') : '<span class="dim">–</span>';
}

function sampleTable(rows: SampleRecord[], id: string): string {
  if (rows.length === 0) return '<p class="dim">No scored training samples yet.</p>';
  const body = rows
    .map(
      (s, i) =>
        `<tr data-task="${e(s.task)}"><td class="n">${i + 1}</td><td class="n">${s.step}</td><td class="nw">${e(s.task)}<span class="dim"> k=${s.k}</span></td>` +
        `<td class="q">${clip(s.query, 140)}</td><td class="q">${clip(s.rewrite, 200)}</td><td class="nw">${codeCell(s.code)}</td>` +
        `<td>${rewardCell(s)}</td><td class="n">${formatValue(num(s.advantage))}</td><td>${outcomeCell(s)}</td></tr>`,
    )
    .join('\n');
  return (
    `<div class="scroll"><table id="${id}"><thead><tr><th>#</th><th>step</th><th>task</th><th>query</th><th>rewrite</th>` +
    `<th>code</th><th>reward</th><th>advantage</th><th>outcome</th></tr></thead><tbody>\n${body}\n</tbody></table></div>`
  );
}

function changedSection(changed: ChangedTask[]): string {
  if (changed.length === 0) {
    return '<p class="dim">No task was sampled at two different steps yet.</p>';
  }
  const side = (ss: SampleRecord[]): string =>
    ss
      .map(
        (s) =>
          `<div class="rw"><span class="dim">k=${s.k} · reward</span> <b>${formatValue(num(s.total))}</b>` +
          `${s.outcome ? ` · ${e(s.outcome)}` : ''}<br>${clip(s.rewrite, 240)}</div>`,
      )
      .join('');
  return changed
    .map((c) => {
      const q = c.first.samples[0]?.query ?? c.last.samples[0]?.query;
      const m1 = mean(c.first.samples.map((s) => num(s.total)));
      const m2 = mean(c.last.samples.map((s) => num(s.total)));
      return (
        `<div class="changed" data-task="${e(c.task)}"><h3>${e(c.task)}</h3><div class="dim">query: ${clip(q, 200)}</div>` +
        `<div class="scroll"><table><thead><tr><th>step ${c.first.step} (mean reward ${formatValue(m1)})</th>` +
        `<th>step ${c.last.step} (mean reward ${formatValue(m2)})</th></tr></thead>` +
        `<tbody><tr><td>${side(c.first.samples)}</td><td>${side(c.last.samples)}</td></tr></tbody></table></div></div>`
      );
    })
    .join('\n');
}

function kv(rows: [string, string][]): string {
  return `<table class="kv">${rows.map(([k, v]) => `<tr><th>${e(k)}</th><td>${v}</td></tr>`).join('')}</table>`;
}

/** Renders the report as one complete HTML document. Pure: the same input gives the same page. */
export function renderReport(input: ReportInput): string {
  const steps = lastPerStep(input.metrics.filter((r): r is StepRecord => r.type === 'step'));
  const vals = lastPerStep(input.metrics.filter((r): r is ValRecord => r.type === 'val'));
  const summary = input.sampleSummary ?? summariseSamples(() => input.samples);
  const run = input.run;
  const runName = input.runDir ? path.basename(path.resolve(input.runDir)) : 'run';
  const title = input.title ?? `rl4qe training report — ${runName}`;
  const x = steps.map((s) => s.step);
  const smooth = defaultSmoothing(steps.length);
  const col = (f: (s: StepRecord) => unknown): (number | null)[] => steps.map((s) => num(f(s)));
  const last = steps[steps.length - 1];
  const wall = last ? num(last.elapsed) : null;

  // ---- header
  // Each validation that beat the previous best is flagged; the last flagged one is the best.
  const bestVal = vals.filter((v) => v.best === true).pop();
  const header: [string, string][] = [
    [
      'run directory',
      input.runDir ? `<code>${e(path.resolve(input.runDir))}</code>` : '<span class="dim">–</span>',
    ],
    [
      'base model',
      run
        ? `<code>${e(String(run.base?.model ?? '?'))}</code> <span class="dim">${e(String(run.base?.architecture ?? ''))}, ` +
          `${e(String(run.base?.numLayers ?? '?'))} layers, hidden ${e(String(run.base?.hiddenSize ?? '?'))}, ` +
          `digest ${e(String(run.base?.digest ?? '').slice(0, 12))}</span>`
        : '<span class="dim">unknown (no run.json)</span>',
    ],
    ['adapter', run ? e(run.adapter === 'full' ? 'full fine-tuning' : String(run.adapter)) : '–'],
    [
      'steps done',
      steps.length === 0
        ? '<b>none yet</b>'
        : `${last.step} <span class="dim">(${steps.length} recorded)</span>`,
    ],
    ['wall time', seconds(wall)],
    ['created', run ? e(String(run.createdAt)) : '–'],
    ['last record', last ? e(String(last.time)) : '–'],
    ['commit', run?.commit ? `<code>${e(run.commit)}</code>` : '<span class="dim">unknown</span>'],
    ['rl4qe', run ? e(String(run.rl4qe)) : '–'],
    ['samples', `${summary.total} <span class="dim">(${summary.validation} validation)</span>`],
    [
      'best validation',
      bestVal
        ? `${e(bestVal.metric)} = <b>${formatValue(num(bestVal.value))}</b> at step ${bestVal.step}`
        : '<span class="dim">none yet</span>',
    ],
  ];
  const configHtml =
    input.config === null || input.config === undefined
      ? '<p class="dim">config.json is missing.</p>'
      : `<details><summary>resolved config (config.json)</summary><pre>${e(JSON.stringify(input.config, null, 2))}</pre></details>`;

  // ---- plots
  const plots: string[] = [];
  // Every curve shares the training's step axis, validation points included.
  const xInclude = steps.length > 0 ? [steps[0].step, last.step] : [];
  const plot = (
    id: string,
    title: string,
    yLabel: string,
    series: LineSeries[],
    yInclude?: number[],
  ): void => {
    plots.push(
      `<figure>${lineChart({ id, title, xLabel: 'step', yLabel, series, yInclude, xInclude })}</figure>`,
    );
  };
  plot('reward', 'Mean total reward (± std over the step’s samples)', 'reward', [
    {
      name: 'total reward',
      x,
      y: col((s) => s.reward),
      band: col((s) => s.rewardStd),
      smooth,
    },
  ]);
  const compNames = [...new Set(steps.flatMap((s) => Object.keys(s.components ?? {})))].sort();
  plot(
    'components',
    'Reward components (mean per step)',
    'component',
    compNames.map((c) => ({ name: c, x, y: col((s) => s.components?.[c]), smooth })),
  );
  const metricNames = [...new Set(vals.map((v) => v.metric))].sort();
  plot(
    'validation',
    'Validation metric',
    metricNames.length === 1 ? metricNames[0] : 'value',
    metricNames.map((m) => {
      const vs = vals.filter((v) => v.metric === m);
      const best = vs.filter((v) => v.best === true && num(v.value) !== null).pop();
      return {
        name: `validation ${m}`,
        x: vs.map((v) => v.step),
        y: vs.map((v) => num(v.value)),
        style: 'points' as const,
        marks: best
          ? [{ x: best.step, y: best.value as number, label: `best ${formatValue(best.value)}` }]
          : [],
      };
    }),
  );
  plot('loss', 'Loss', 'loss', [{ name: 'loss', x, y: col((s) => s.loss), smooth }]);
  plot(
    'kl',
    'KL to the frozen base (per token, k3 estimate)',
    'KL',
    [{ name: 'KL', x, y: col((s) => s.kl), smooth }],
    [0],
  );
  plot('entropy', 'Entropy estimate (mean −log π per sampled token)', 'nats', [
    { name: 'entropy', x, y: col((s) => s.entropy), smooth },
  ]);
  plot('gradnorm', 'Gradient norm (before clipping)', '‖g‖', [
    { name: 'gradient norm', x, y: col((s) => s.gradNorm), smooth },
  ]);
  plot('length', 'Rewrite length', 'tokens', [
    { name: 'rewrite tokens', x, y: col((s) => s.rewriteTokens), smooth },
  ]);
  const pass = col((s) => s.passRate);
  const valPass = vals.map((v) => num(v.passRate));
  if (pass.some((v) => v !== null) || valPass.some((v) => v !== null)) {
    const series: LineSeries[] = [{ name: 'training pass rate', x, y: pass, smooth }];
    if (valPass.some((v) => v !== null)) {
      series.push({
        name: 'validation pass rate',
        x: vals.map((v) => v.step),
        y: valPass,
        style: 'points',
      });
    }
    plot('passrate', 'Execution pass rate', 'share passing', series, [0]);
  }
  plot('lr', 'Learning rate', 'lr', [{ name: 'learning rate', x, y: col((s) => s.lr) }], [0]);
  plot('throughput', 'Refiner throughput', 'tokens / s', [
    { name: 'sampling', x, y: col((s) => s.sampleTokensPerSec), smooth },
    { name: 'update', x, y: col((s) => s.updateTokensPerSec), smooth },
  ]);

  // ---- where the time goes
  const stages = ['sample', 'generate', 'reward', 'update'] as const;
  const stageCol = (k: (typeof stages)[number] | 'total'): (number | null)[] =>
    col((s) => s.times?.[k]);
  const totals = stages.map((k) => sumOf(stageCol(k)));
  const wallSum = sumOf(stageCol('total'));
  const n = Math.max(1, steps.length);
  const timeRows = [
    {
      label: 'mean per step',
      values: totals.map((t) => t / n),
      text: `${formatValue(wallSum / n)} s wall`,
    },
  ];
  if (steps.length >= 20) {
    // The first and last quarter show what changed over the run (a warm generator cache, longer rewrites).
    const q = Math.floor(steps.length / 4);
    for (const [label, part] of [
      ['first quarter', steps.slice(0, q)],
      ['last quarter', steps.slice(steps.length - q)],
    ] as const) {
      const per = stages.map((k) => sumOf(part.map((s) => num(s.times?.[k]))) / part.length);
      const w = sumOf(part.map((s) => num(s.times?.total))) / part.length;
      timeRows.push({
        label: `${label} (per step)`,
        values: per,
        text: `${formatValue(w)} s wall`,
      });
    }
  }
  const stageSum = totals.reduce((a, b) => a + b, 0);
  const valSeconds = sumOf(vals.map((v) => num(v.seconds)));
  const timeTable = kv([
    ...stages.map((k, i): [string, string] => [
      k,
      `${seconds(totals[i])} <span class="dim">(${formatValue(totals[i] / n)} s/step, ${stageSum > 0 ? ((100 * totals[i]) / stageSum).toFixed(1) : '0'}%)</span>`,
    ]),
    ['sum of stages', seconds(stageSum)],
    [
      'step wall time',
      `${seconds(wallSum)}${stageSum > wallSum + 1e-9 ? ` <span class="dim">(stages overlapped: ${seconds(stageSum - wallSum)} saved)</span>` : ''}`,
    ],
    ['validation', `${seconds(valSeconds)} <span class="dim">(${vals.length} runs)</span>`],
    ['sampling tokens/s (mean)', formatValue(mean(col((s) => s.sampleTokensPerSec)))],
    ['update tokens/s (mean)', formatValue(mean(col((s) => s.updateTokensPerSec)))],
  ]);
  const timeChart = stackedBar({
    id: 'time',
    title: 'Where the time goes (seconds per step)',
    segments: stages,
    rows: timeRows,
    unit: ' s',
    emptyText: 'no steps yet',
  });

  // ---- generator
  const g = (f: (s: StepRecord) => unknown): number => sumOf(col(f));
  const calls = g((s) => s.generator?.calls);
  const cached = g((s) => s.generator?.cached);
  const failures = g((s) => s.generator?.failures);
  const cost = g((s) => s.generator?.costUsd);
  const pct = (a: number, b: number): string =>
    b > 0 ? ` <span class="dim">(${((100 * a) / b).toFixed(1)}%)</span>` : '';
  const genTable = kv([
    ['calls', String(calls)],
    ['cache hits', `${cached}${pct(cached, calls)}`],
    [
      'failures',
      `${failures > 0 ? `<span class="bad">${failures}</span>` : '0'}${pct(failures, calls)}`,
    ],
    ['cost', `$${cost.toFixed(cost > 0 && cost < 1 ? 4 : 2)}`],
  ]);

  // ---- dropped
  // Counted from the samples; a run whose samples.jsonl is missing falls back on the steps' counts.
  let dropped = summary.dropped;
  if (summary.total === 0) {
    dropped = {};
    for (const s of steps) {
      for (const [k, v] of Object.entries(s.dropped ?? {}))
        dropped[k] = (dropped[k] ?? 0) + (num(v) ?? 0);
    }
  }
  const dropBars = Object.entries(dropped)
    .filter(([, v]) => v > 0)
    .sort((a, b) => b[1] - a[1] || cmp(a[0], b[0]))
    .map(([label, value]) => ({ label, value }));
  const training = summary.total - summary.validation;
  const dropTotal = dropBars.reduce((a, b) => a + b.value, 0);
  const dropHtml =
    dropBars.length === 0
      ? '<p>No sample was dropped.</p>'
      : `<p>${dropTotal} of ${training} training samples${training > 0 ? ` (${((100 * dropTotal) / training).toFixed(1)}%)` : ''} were left out of the update.</p>` +
        barChart({ id: 'dropped', title: 'Dropped samples by reason', bars: dropBars });

  const warnings = (input.warnings ?? []).map((w) => `<p class="warn">⚠ ${e(w)}</p>`).join('\n');
  const emptyNote =
    steps.length === 0
      ? '<p class="warn">This run has no steps yet: the plots fill in as metrics.jsonl grows.</p>'
      : '';

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="generator" content="rl4qe report">
<title>${e(title)}</title>
<style>
:root { --bg: #fff; --fg: #1d1d1f; --dim: #6b6b70; --line: #d8d8dc; --panel: #f5f5f7; --warn: #8a5a00; --warnbg: #fff4d6; --bad: #b3261e; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #17181a; --fg: #e4e4e6; --dim: #9a9aa0; --line: #3a3b3f; --panel: #222326; --warn: #ffd27a; --warnbg: #3a2f12; --bad: #ff8a80; }
}
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1400px; padding: 16px 24px 48px; background: var(--bg); color: var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; }
h1 { font-size: 22px; margin: 8px 0 12px; }
h2 { font-size: 18px; margin: 28px 0 8px; padding-top: 8px; border-top: 1px solid var(--line); }
h3 { font-size: 14px; margin: 14px 0 4px; font-family: ui-monospace, monospace; }
code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12px; }
pre { white-space: pre-wrap; word-break: break-word; background: var(--panel); padding: 8px; border-radius: 4px; margin: 4px 0; max-height: 480px; overflow: auto; }
.dim { color: var(--dim); }
.bad { color: var(--bad); }
.warn { background: var(--warnbg); color: var(--warn); padding: 6px 10px; border-radius: 4px; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 12px 20px; }
figure { margin: 0; padding: 8px; background: var(--panel); border-radius: 6px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 4px 8px; border-bottom: 1px solid var(--line); }
thead th { position: sticky; top: 0; background: var(--bg); }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.q { min-width: 220px; max-width: 420px; word-break: break-word; }
td.nw { white-space: nowrap; }
nav { margin: 4px 0 12px; }
nav a { margin-right: 14px; color: inherit; }
.changed table { table-layout: fixed; }
table.kv { width: auto; }
table.kv th { font-weight: 500; color: var(--dim); white-space: nowrap; }
summary { cursor: pointer; word-break: break-word; }
.rw { margin: 0 0 8px; }
.cols { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 20px; align-items: start; }
@media (max-width: 900px) { .cols { grid-template-columns: 1fr; } .plots { grid-template-columns: 1fr; } }
${chartCss}
</style>
</head>
<body>
<h1>${e(title)}</h1>
<nav><a href="#curves">curves</a><a href="#time">time</a><a href="#generator">generator</a><a href="#best">best</a><a href="#worst">worst</a><a href="#changed">first vs last</a><a href="#dropped">dropped</a></nav>
${warnings}
${emptyNote}
<section id="run">${kv(header)}
${configHtml}</section>

<h2 id="curves">Training curves</h2>
<div class="plots">
${plots.join('\n')}
</div>

<h2 id="time">Where the time goes</h2>
<div class="cols"><figure>${timeChart}</figure><div>${timeTable}</div></div>

<h2 id="generator">Generator</h2>
${genTable}

<h2 id="best">Best rewrites <span class="dim">(highest total reward, training samples)</span></h2>
${sampleTable(summary.best, 'best')}

<h2 id="worst">Worst rewrites <span class="dim">(lowest total reward, training samples)</span></h2>
${sampleTable(summary.worst, 'worst')}

<h2 id="changed">What training changed <span class="dim">(the same task at its first and last step)</span></h2>
${changedSection(summary.changed)}

<h2 id="dropped">Dropped samples</h2>
${dropHtml}

<p class="dim">Written by rl4qe report from the files in the run directory; regenerate with <code>rl4qe report ${e(input.runDir ?? 'RUN_DIR')}</code>.</p>
</body>
</html>
`;
}
