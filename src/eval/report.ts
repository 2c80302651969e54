// The outputs of `rl4qe eval`: eval.json (every sample and every number: the record), a Markdown
// table (stdout and eval.md: what goes into a results page) and a self-contained offline HTML
// report (inline SVG from util/svg-chart.ts, no scripts, no external resources). The report is a
// pure function of eval.json, so it can be rebuilt from the record alone.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PALETTE, barChart, chartCss, escapeHtml, stackedBar } from '../util/svg-chart.js';
import type { EvalResult } from './evaluate.js';
import { OUTCOMES, type Comparison, type MetricComparison } from './summary.js';

const f3 = (v: number | null | undefined): string =>
  v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(3);
const pct = (v: number | null | undefined): string =>
  v === null || v === undefined || !Number.isFinite(v) ? '–' : `${(v * 100).toFixed(1)}%`;
const signed = (v: number | null | undefined, f: (x: number) => string): string =>
  v === null || v === undefined || !Number.isFinite(v) ? '–' : `${v >= 0 ? '+' : ''}${f(v)}`;

function diffCell(c: MetricComparison): string {
  if (c.diff === null || c.diffCi === null) return '–';
  return `${signed(c.diff, (x) => x.toFixed(3))} [${f3(c.diffCi.lo)}, ${f3(c.diffCi.hi)}]`;
}
function relCell(c: MetricComparison): string {
  if (c.rel === null) return '–';
  const ci = c.relCi ? ` [${pct(c.relCi.lo)}, ${pct(c.relCi.hi)}]` : '';
  return `${signed(c.rel, (x) => `${(x * 100).toFixed(1)}%`)}${ci}`;
}
/** An interval that excludes 0 is marked, so a reader sees at once which changes are resolved. */
function resolved(c: MetricComparison): string {
  if (!c.diffCi) return '';
  if (c.diffCi.lo > 0) return ' ▲';
  if (c.diffCi.hi < 0) return ' ▼';
  return '';
}

/** One comparison against the baseline arm as table head and rows (Markdown and HTML alike). */
function comparisonTable(c: Comparison): [string[], string[][]] {
  return [
    ['metric', 'n', 'excluded', c.base, c.arm, 'Δ [95% CI]', 'relative [95% CI]', 'W/T/L'],
    c.metrics.map((m) => [
      m.metric,
      String(m.n),
      String(m.excluded),
      f3(m.meanBase),
      f3(m.meanArm),
      diffCell(m) + resolved(m),
      relCell(m),
      `${m.wtl.wins}/${m.wtl.ties}/${m.wtl.losses}`,
    ]),
  ];
}

function mdTable(head: string[], rows: string[][]): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  return [
    `| ${head.map(esc).join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

function metricNames(r: EvalResult): string[] {
  return Object.keys(r.summaries[0]?.metrics ?? {});
}

const GUARD_HEAD = ['arm', 'adapter', 'checkpoint', 'base model', 'split overlap'];

/** Per adapter arm: what was loaded and what the guards found (so a reader can trust the row). */
function guardRows(r: EvalResult): string[][] {
  return r.arms
    .filter((a) => a.adapter !== undefined)
    .map((a) => {
      const ad = a.adapter!;
      return [
        a.name,
        ad.dir,
        ad.checkpoint ? `${ad.checkpoint.name} (${ad.checkpoint.via})` : '–',
        `${ad.base.via}: ${ad.base.detail}`,
        ad.overlap.checked
          ? `none with train; ${ad.overlap.familyOverlap} problems share a family with train`
          : 'not checked (no run directory)',
      ];
    });
}

/** The Markdown summary: settings, means per arm, paired comparisons, outcomes, libraries. */
export function renderMarkdown(r: EvalResult): string {
  const s = r.settings;
  const ms = metricNames(r);
  const out: string[] = [];
  out.push(`# rl4qe eval: ${s.dataset} ${s.split} (${s.tasks} problems)`);
  out.push('');
  out.push(
    `Generator ${s.generator.identity.backend} ${s.generator.identity.model} (input ${s.generator.input}, format ${s.generator.format}, ` +
      `maxTokens ${s.maxTokens}, ${s.samples} sample${s.samples > 1 ? 's' : ''} at temperature ${s.temperature}); ` +
      `refiner ${path.basename(s.refiner.model)} (${s.refiner.weights}, greedy, maxTokens ${s.refiner.maxTokens}); ` +
      `execution ${s.exec ? 'on' : s.execNote}; split: ${s.splitSource}. ` +
      `Intervals: paired bootstrap, ${s.bootstrap.resamples} resamples, seed ${s.bootstrap.seed}, 95% percentile. ` +
      `▲/▼: the interval excludes 0.`,
  );
  const guards = guardRows(r);
  if (guards.length > 0) {
    out.push('');
    out.push('## Adapters and their guards');
    out.push('');
    out.push(mdTable(GUARD_HEAD, guards));
  }
  out.push('');
  out.push('## Means per arm');
  out.push('');
  out.push(
    mdTable(
      ['arm', ...ms, 'problems', 'failures'],
      r.summaries.map((a) => [
        a.arm,
        ...ms.map((m) => f3(a.metrics[m]?.mean)),
        String(a.problems),
        String(a.outcomes.generator_failure + a.outcomes.refiner_failure),
      ]),
    ),
  );
  for (const c of r.comparisons) {
    out.push('');
    out.push(`## ${c.arm} vs ${c.base} (paired)`);
    out.push('');
    out.push(mdTable(...comparisonTable(c)));
    if (c.mcnemar) {
      out.push('');
      out.push(
        `McNemar (exact, pass@1 of sample 0): ${c.base} only ${c.mcnemar.b}, ${c.arm} only ${c.mcnemar.c}, ` +
          `both agree ${c.mcnemar.concordant}, p = ${c.mcnemar.p.toPrecision(4)} (n ${c.mcnemar.n}, excluded ${c.mcnemar.excluded}).`,
      );
    }
  }
  out.push('');
  out.push('## Outcomes (samples)');
  out.push('');
  const used = OUTCOMES.filter((o) => r.summaries.some((a) => a.outcomes[o] > 0));
  out.push(
    mdTable(
      ['arm', ...used],
      r.summaries.map((a) => [a.arm, ...used.map((o) => String(a.outcomes[o]))]),
    ),
  );
  out.push('');
  out.push('## Lengths (means)');
  out.push('');
  out.push(
    mdTable(
      ['arm', 'rewrite chars', 'rewrite words', 'rewrite tokens', 'code chars', 'code lines'],
      r.summaries.map((a) => [
        a.arm,
        f3(a.lengths.rewriteChars),
        f3(a.lengths.rewriteWords),
        f3(a.lengths.rewriteTokens),
        f3(a.lengths.codeChars),
        f3(a.lengths.codeLines),
      ]),
    ),
  );
  const strata = [...new Set(r.summaries.flatMap((a) => Object.keys(a.byStratum)))].sort();
  const keyMetrics = ms.filter((m) => m === 'css' || m === 'bleu' || m === 'pass@1');
  out.push('');
  out.push(`## Per library (${keyMetrics.join(', ')})`);
  out.push('');
  out.push(
    mdTable(
      [
        'library',
        'problems',
        ...r.summaries.flatMap((a) => keyMetrics.map((m) => `${a.arm} ${m}`)),
      ],
      strata.map((st) => [
        st,
        String(r.summaries[0]?.byStratum[st]?.problems ?? 0),
        ...r.summaries.flatMap((a) => keyMetrics.map((m) => f3(a.byStratum[st]?.metrics[m]))),
      ]),
    ),
  );
  if (r.promptSearch) {
    const p = r.promptSearch;
    out.push('');
    out.push(
      `## Prompt search (${p.problems.length} training-split problems, metric ${p.metric}; chosen: ${p.chosen})`,
    );
    out.push('');
    out.push(
      mdTable(
        ['instruction', p.metric, 'css (tie-break)', 'n', 'failures'],
        p.candidates.map((c) => [
          c.name === p.chosen ? `**${c.name}**` : c.name,
          f3(c.score),
          f3(c.tiebreak),
          String(c.n),
          String(c.failures),
        ]),
      ),
    );
  }
  out.push('');
  out.push(
    `Calls: refiner ${r.calls.refiner.backend} of ${r.calls.refiner.requests} (${r.calls.refiner.cached} cached), ` +
      `generator ${r.calls.generator.backend} of ${r.calls.generator.requests} (${r.calls.generator.cached} cached); ` +
      `${r.seconds.toFixed(1)} s.`,
  );
  return out.join('\n') + '\n';
}

/** A forest plot: per arm, the mean difference and its interval against the baseline. */
function forestPlot(r: EvalResult, metric: string): string {
  const rows = r.comparisons
    .map((c) => ({ arm: c.arm, m: c.metrics.find((x) => x.metric === metric) }))
    .filter((x): x is { arm: string; m: MetricComparison } => x.m?.diffCi != null);
  const title = `${metric}: difference to ${r.settings.baseline} (95% paired bootstrap)`;
  const width = 640;
  const left = 170;
  const right = 150;
  const top = 30;
  const rowH = 22;
  const height = top + Math.max(1, rows.length) * rowH + 28;
  const parts = [
    `<svg class="chart" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeHtml(title)}">`,
    `<title>${escapeHtml(title)}</title><text class="title" x="${left}" y="16">${escapeHtml(title)}</text>`,
  ];
  if (rows.length === 0) {
    parts.push(
      `<text class="empty" x="${width / 2}" y="${top + 14}" text-anchor="middle">no pairs to compare</text></svg>`,
    );
    return parts.join('');
  }
  let lo = Math.min(0, ...rows.map((x) => x.m.diffCi!.lo));
  let hi = Math.max(0, ...rows.map((x) => x.m.diffCi!.hi));
  if (hi - lo < 1e-9) {
    lo -= 0.05;
    hi += 0.05;
  }
  const pw = width - left - right;
  const px = (v: number): number => left + ((v - lo) / (hi - lo)) * pw;
  const fx = (v: number): string => px(v).toFixed(1);
  parts.push(
    `<line class="axis" x1="${fx(0)}" x2="${fx(0)}" y1="${top - 4}" y2="${top + rows.length * rowH}" stroke="#888"/>`,
    `<text x="${fx(0)}" y="${height - 8}" text-anchor="middle">0</text>`,
  );
  // The ends of the axis, unless they would print over the 0 label.
  if (px(0) - px(lo) > 40)
    parts.push(`<text x="${fx(lo)}" y="${height - 8}">${escapeHtml(f3(lo))}</text>`);
  if (px(hi) - px(0) > 40)
    parts.push(
      `<text x="${fx(hi)}" y="${height - 8}" text-anchor="end">${escapeHtml(f3(hi))}</text>`,
    );
  rows.forEach((x, i) => {
    const y = top + i * rowH + 11;
    const col = PALETTE[i % PALETTE.length];
    const ci = x.m.diffCi!;
    parts.push(
      `<text x="${left - 8}" y="${y + 4}" text-anchor="end">${escapeHtml(x.arm)}</text>`,
      `<line data-kind="ci" x1="${fx(ci.lo)}" x2="${fx(ci.hi)}" y1="${y}" y2="${y}" stroke="${col}" stroke-width="3"/>`,
      `<circle data-kind="diff" cx="${fx(x.m.diff!)}" cy="${y}" r="4.5" fill="${col}"><title>${escapeHtml(`${x.arm}: ${diffCell(x.m)}`)}</title></circle>`,
      `<text x="${width - right + 8}" y="${y + 4}">${escapeHtml(diffCell(x.m))}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('');
}

/** Cells that read as numbers (values, intervals, W/T/L) align right; text aligns left. */
const NUMERIC = /^[-+–0-9.,%[\] ▲▼/]*$/;

function htmlTable(head: string[], rows: string[][]): string {
  return (
    `<table><thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>` +
    rows
      .map(
        (r) =>
          `<tr>${r.map((c) => (NUMERIC.test(c) ? `<td>${escapeHtml(c)}</td>` : `<td class="t">${escapeHtml(c)}</td>`)).join('')}</tr>`,
      )
      .join('') +
    '</tbody></table>'
  );
}

/** The self-contained HTML report: tables, charts, and a browsable side-by-side of every problem. */
export function renderHtml(r: EvalResult): string {
  const s = r.settings;
  const ms = metricNames(r);
  const sec: string[] = [];
  sec.push(
    `<p>${escapeHtml(
      `Generator ${s.generator.identity.backend} ${s.generator.identity.model}; refiner ${path.basename(s.refiner.model)}; ` +
        `${s.tasks} problems of ${s.dataset} ${s.split} (${s.splitSource}); execution ${s.exec ? 'on' : s.execNote}; ` +
        `bootstrap ${s.bootstrap.resamples} resamples, seed ${s.bootstrap.seed}. Created ${r.createdAt}.`,
    )}</p>`,
  );
  const guards = guardRows(r);
  if (guards.length > 0)
    sec.push('<h2>Adapters and their guards</h2>' + htmlTable(GUARD_HEAD, guards));
  sec.push('<h2>Means per arm</h2>');
  sec.push(
    htmlTable(
      ['arm', ...ms, 'problems', 'failures'],
      r.summaries.map((a) => [
        a.arm,
        ...ms.map((m) => f3(a.metrics[m]?.mean)),
        String(a.problems),
        String(a.outcomes.generator_failure + a.outcomes.refiner_failure),
      ]),
    ),
  );
  sec.push('<h2>Differences to the baseline</h2>');
  for (const m of ms) sec.push(forestPlot(r, m));
  for (const c of r.comparisons) {
    sec.push(`<h3>${escapeHtml(`${c.arm} vs ${c.base}`)}</h3>`);
    sec.push(htmlTable(...comparisonTable(c)));
    if (c.mcnemar)
      sec.push(
        `<p>${escapeHtml(
          `Exact McNemar on pass@1 (sample 0): ${c.base} only ${c.mcnemar.b}, ${c.arm} only ${c.mcnemar.c}, p = ${c.mcnemar.p.toPrecision(4)}.`,
        )}</p>`,
      );
  }
  for (const m of ms.filter((x) => x === 'css' || x === 'pass@1' || x === 'bleu')) {
    sec.push(
      barChart({
        title: `${m}: mean per arm`,
        bars: r.summaries.map((a) => ({
          label: a.arm,
          value: a.metrics[m]?.mean ?? 0,
          text: f3(a.metrics[m]?.mean),
        })),
      }),
    );
  }
  const used = OUTCOMES.filter((o) => r.summaries.some((a) => a.outcomes[o] > 0));
  sec.push('<h2>Outcomes</h2>');
  sec.push(
    stackedBar({
      title: 'Outcome of every sample',
      segments: used,
      rows: r.summaries.map((a) => ({ label: a.arm, values: used.map((o) => a.outcomes[o]) })),
    }),
  );
  const strata = [...new Set(r.summaries.flatMap((a) => Object.keys(a.byStratum)))].sort();
  const key = ms.includes('pass@1') ? 'pass@1' : 'css';
  sec.push(`<h2>Per library (${escapeHtml(key)})</h2>`);
  sec.push(
    htmlTable(
      ['library', 'problems', ...r.summaries.map((a) => a.arm)],
      strata.map((st) => [
        st,
        String(r.summaries[0]?.byStratum[st]?.problems ?? 0),
        ...r.summaries.map((a) => f3(a.byStratum[st]?.metrics[key])),
      ]),
    ),
  );
  if (r.promptSearch) {
    const p = r.promptSearch;
    sec.push(
      `<h2>Prompt search</h2><p>${escapeHtml(`Chosen on ${p.problems.length} training-split problems by ${p.metric}: ${p.chosen}.`)}</p>`,
    );
    sec.push(
      htmlTable(
        ['instruction', 'text', p.metric, 'n'],
        p.candidates.map((c) => [c.name, c.instruction, f3(c.score), String(c.n)]),
      ),
    );
  }
  // Side by side: each problem's query, then every arm's rewrite, code and scores.
  sec.push('<h2>Problems</h2>');
  for (const t of r.tasks) {
    const ss = r.samples.filter((x) => x.task === t.id && x.k === 0);
    const cells = ss
      .map((x) => {
        const sc = ms
          .filter((m) => !m.startsWith('pass@'))
          .map((m) => `${m} ${f3(x.components[m])}`)
          .join(' · ');
        return (
          `<div class="arm"><h4>${escapeHtml(x.arm)} <small>${escapeHtml(x.outcome)}</small></h4>` +
          (x.rewrite !== null
            ? `<p class="k">rewrite</p><pre>${escapeHtml(x.rewrite)}</pre>`
            : '') +
          `<p class="k">code</p><pre>${escapeHtml(x.code ?? x.failure ?? '')}</pre><p class="k">${escapeHtml(sc)}</p></div>`
        );
      })
      .join('');
    sec.push(
      `<details><summary>${escapeHtml(`${t.id} (${t.stratum})`)}</summary>` +
        `<p class="k">query</p><pre>${escapeHtml(t.query)}</pre><p class="k">reference</p><pre>${escapeHtml(t.reference)}</pre>` +
        `<div class="arms">${cells}</div></details>`,
    );
  }
  const css = `
body { font: 14px system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; --fg: #222; color: var(--fg); }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th:first-child, td:first-child, td.t { text-align: left; }
pre { white-space: pre-wrap; background: rgba(127,127,127,0.1); padding: 6px; max-height: 22em; overflow: auto; }
.arms { display: grid; grid-template-columns: repeat(auto-fit, minmax(280px, 1fr)); gap: 8px; }
.k { margin: 2px 0; opacity: 0.7; font-size: 12px; }
@media (prefers-color-scheme: dark) { body { background: #111; --fg: #ddd; } th, td { border-color: #444; } }
${chartCss}`;
  return (
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(`rl4qe eval: ${s.dataset} ${s.split}`)}</title>` +
    `<style>${css}</style></head><body><h1>${escapeHtml(`rl4qe eval: ${s.dataset} ${s.split} (${s.tasks} problems)`)}</h1>` +
    sec.join('\n') +
    '</body></html>\n'
  );
}

export interface EvalOutputs {
  json: string;
  markdown: string;
  html: string;
}

/** Writes eval.json, eval.md and report.html into `dir`; returns their paths. */
export async function writeEvalOutputs(r: EvalResult, dir: string): Promise<EvalOutputs> {
  await mkdir(dir, { recursive: true });
  const out = {
    json: path.join(dir, 'eval.json'),
    markdown: path.join(dir, 'eval.md'),
    html: path.join(dir, 'report.html'),
  };
  await writeFile(out.json, JSON.stringify(r, null, 2) + '\n');
  await writeFile(out.markdown, renderMarkdown(r));
  await writeFile(out.html, renderHtml(r));
  return out;
}
