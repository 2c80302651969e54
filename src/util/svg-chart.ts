// Inline SVG charts for the self-contained HTML reports (train/report.ts, and `rl4qe eval`'s
// report). Pure functions from numbers to SVG markup: no plotting dependency, no scripts, no
// external resources, so a report opens offline years later exactly as it was written.
//
// The SVG carries class names (styled by `chartCss`, which the page includes once, with a dark
// variant) and presentation attributes as a fallback, so a chart still reads when pasted into a
// page without the stylesheet. No xmlns attribute: inline SVG in HTML does not need one, and a
// report must not contain a single http(s) reference a reviewer has to check is harmless.

/** Escapes text for HTML element content and for quoted attribute values (SVG included). */
export function escapeHtml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** Series colours, chosen to read on a white background; DARK_PALETTE is the same hues, lighter. */
export const PALETTE = [
  '#4e79a7',
  '#f28e2b',
  '#59a14f',
  '#e15759',
  '#b07aa1',
  '#76b7b2',
  '#9c755f',
  '#d4a017',
] as const;

export const DARK_PALETTE = [
  '#7fa7d4',
  '#f7a65a',
  '#82c07a',
  '#f08284',
  '#cb9bc0',
  '#98d0cb',
  '#c19d86',
  '#e8c24a',
] as const;

/** The stylesheet the charts expect; include it once in the page's <style>. */
export const chartCss = `
.chart { display: block; max-width: 100%; height: auto; color: var(--fg, #222); }
.chart text { fill: currentColor; font: 11px system-ui, sans-serif; }
.chart .title { font-size: 13px; font-weight: 600; }
.chart .axis { stroke: currentColor; stroke-width: 1; opacity: 0.7; }
.chart .grid { stroke: currentColor; stroke-width: 1; opacity: 0.12; }
.chart .empty { opacity: 0.6; font-style: italic; }
.chart .raw { fill: none; stroke-width: 1; opacity: 0.45; }
.chart .avg { fill: none; stroke-width: 2.5; }
.chart .solo { fill: none; stroke-width: 2; }
.chart .band { stroke: none; fill-opacity: 0.2; }
.chart .mark { stroke: currentColor; stroke-width: 1.5; }
.chart .seg-label { font-size: 10px; fill: #fff; }
${PALETTE.map((c, i) => `.chart .s${i} { stroke: ${c}; } .chart .f${i} { fill: ${c}; }`).join('\n')}
@media (prefers-color-scheme: dark) {
  .chart { color: var(--fg, #ddd); }
  .chart .raw { opacity: 0.55; }
  .chart .band { fill-opacity: 0.3; }
${DARK_PALETTE.map((c, i) => `  .chart .s${i} { stroke: ${c}; } .chart .f${i} { fill: ${c}; }`).join('\n')}
}
`;

/** Points per series above which a chart downsamples (largest-triangle-three-buckets). */
export const MAX_POINTS = 2000;

export interface LineSeries {
  name: string;
  x: readonly number[];
  /** null (or a non-finite number) leaves a gap in the line. */
  y: readonly (number | null)[];
  /** 'line' (default) draws polylines; 'points' draws markers only (sparse series: validation). */
  style?: 'line' | 'points';
  /**
   * Moving-average window in points. When > 1 the raw series is drawn thin and its centred
   * moving average thick; 0 or 1 draws the raw series alone, thick.
   */
  smooth?: number;
  /** Half-width of a shaded band around y (y ± band), e.g. the std of the reward. */
  band?: readonly (number | null)[];
  /** Points to call out (the best validation value), drawn as a ring with a label. */
  marks?: { x: number; y: number; label: string }[];
  /** Palette index; defaults to the series' position. */
  color?: number;
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly LineSeries[];
  width?: number;
  height?: number;
  /** Per-series point budget of the SVG (default MAX_POINTS). */
  maxPoints?: number;
  /** Force the y range to include these values (e.g. 0 for a share, 1 for a pass rate). */
  yInclude?: readonly number[];
  /** Force the x range to include these values (validation points on the training's step axis). */
  xInclude?: readonly number[];
  /** Text shown instead of the plot area when no series has a finite value. */
  emptyText?: string;
  /** Extra attribute on the <svg> so a report's tests can find a chart (data-chart="..."). */
  id?: string;
}

/** A window size for the moving average that suits n points (about a tenth, within 3..200). */
export function defaultSmoothing(n: number): number {
  if (n < 5) return 0;
  return Math.max(3, Math.min(200, Math.ceil(n / 10)));
}

/**
 * Centred moving average over the finite values in each window. It is defined wherever its
 * window holds a value, so it bridges the isolated gaps of a component that some steps lack
 * (a line broken every few steps reads as dashes, not as a trend); wider gaps stay gaps.
 */
export function movingAverage(y: readonly (number | null)[], window: number): (number | null)[] {
  const half = Math.floor(window / 2);
  const v = y.map(finite);
  // Prefix sums over finite values make every window O(1): long runs have 10^5 steps.
  const sum = new Float64Array(v.length + 1);
  const cnt = new Int32Array(v.length + 1);
  for (let i = 0; i < v.length; i++) {
    const vi = v[i];
    sum[i + 1] = sum[i] + (vi ?? 0);
    cnt[i + 1] = cnt[i] + (vi === null ? 0 : 1);
  }
  return v.map((_, i) => {
    const lo = Math.max(0, i - half);
    const hi = Math.min(v.length, i + half + 1);
    const c = cnt[hi] - cnt[lo];
    return c === 0 ? null : (sum[hi] - sum[lo]) / c;
  });
}

function finite(v: number | null | undefined): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/**
 * Indices to keep when drawing (x, y) with at most `threshold` points: largest-triangle-three-
 * buckets (Steinarsson 2013) keeps the first and last point and, per bucket, the point that
 * spans the largest triangle with its neighbours, so spikes survive where striding would drop them.
 */
export function lttbIndices(
  x: readonly number[],
  y: readonly number[],
  threshold: number,
): number[] {
  const n = x.length;
  if (threshold >= n || n <= 2) return Array.from({ length: n }, (_, i) => i);
  if (threshold < 3) return threshold <= 1 ? [0] : [0, n - 1];
  const out = [0];
  const every = (n - 2) / (threshold - 2);
  let a = 0;
  for (let i = 0; i < threshold - 2; i++) {
    // Average of the next bucket: the third vertex of the triangle.
    const nextLo = Math.floor((i + 1) * every) + 1;
    const nextHi = Math.min(Math.floor((i + 2) * every) + 1, n);
    let ax = 0;
    let ay = 0;
    for (let j = nextLo; j < nextHi; j++) {
      ax += x[j];
      ay += y[j];
    }
    const m = Math.max(1, nextHi - nextLo);
    ax /= m;
    ay /= m;
    const lo = Math.floor(i * every) + 1;
    const hi = Math.floor((i + 1) * every) + 1;
    let best = lo;
    let bestArea = -1;
    for (let j = lo; j < hi; j++) {
      const area = Math.abs((x[a] - ax) * (y[j] - y[a]) - (x[a] - x[j]) * (ay - y[a]));
      if (area > bestArea) {
        bestArea = area;
        best = j;
      }
    }
    out.push(best);
    a = best;
  }
  out.push(n - 1);
  return out;
}

/** Runs of consecutive finite values: the pieces a line with gaps is drawn in. */
function segments(y: readonly (number | null)[]): [number, number][] {
  const out: [number, number][] = [];
  let start = -1;
  for (let i = 0; i <= y.length; i++) {
    const ok = i < y.length && finite(y[i]) !== null;
    if (ok && start < 0) start = i;
    if (!ok && start >= 0) {
      out.push([start, i]);
      start = -1;
    }
  }
  return out;
}

/**
 * The indices of each gap-free segment to draw, within a total budget of `max` points. Budget is
 * shared in proportion to segment length; a series so fragmented that two points per segment
 * exceed the budget is drawn as one segment over its finite values (gaps closed) instead.
 */
function drawIndices(x: readonly number[], y: readonly (number | null)[], max: number): number[][] {
  const segs = segments(y);
  const total = segs.reduce((s, [a, b]) => s + (b - a), 0);
  if (total <= max) return segs.map(([a, b]) => range(a, b));
  const fit = (idx: number[], budget: number): number[] =>
    lttbIndices(
      idx.map((i) => x[i]),
      idx.map((i) => y[i] as number),
      budget,
    ).map((k) => idx[k]);
  if (segs.length * 2 > max) {
    return [
      fit(
        segs.flatMap(([a, b]) => range(a, b)),
        max,
      ),
    ];
  }
  return segs.map(([a, b]) => fit(range(a, b), Math.max(2, Math.floor(((b - a) * max) / total))));
}

function range(a: number, b: number): number[] {
  return Array.from({ length: b - a }, (_, i) => a + i);
}

/** Round "nice" tick values (1, 2, 5 × 10^k) covering [lo, hi] with about `count` ticks. */
export function niceTicks(lo: number, hi: number, count = 5): { ticks: number[]; step: number } {
  if (!(hi > lo)) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  const step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
  const first = Math.floor(lo / step) * step;
  const ticks: number[] = [];
  for (let t = first; t <= hi + step * 1e-9; t += step)
    ticks.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  if (ticks[ticks.length - 1] < hi) ticks.push(ticks[ticks.length - 1] + step);
  return { ticks, step };
}

/** A tick label: exponent form for tiny or huge values (learning rates, token counts). */
export function formatTick(v: number, step: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-3) return trimExp(v.toExponential(Math.max(0, sigDigits(v, step) - 1)));
  if (a >= 1000 && step >= 1000) return `${trimNum((v / 1000).toFixed(step >= 10000 ? 0 : 1))}k`;
  const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
  return trimNum(v.toFixed(decimals));
}

function sigDigits(v: number, step: number): number {
  return Math.max(
    1,
    Math.min(4, Math.floor(Math.log10(Math.abs(v))) - Math.floor(Math.log10(step)) + 1),
  );
}
function trimNum(s: string): string {
  return s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s;
}
function trimExp(s: string): string {
  const [m, e] = s.split('e');
  return `${trimNum(m)}e${e}`;
}

/** A value for a label or a table: 3 significant digits, exponent form when tiny or huge. */
export function formatValue(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-3) return trimExp(v.toExponential(2));
  if (Number.isInteger(v)) return String(v);
  return trimNum(v.toPrecision(3));
}

const fmt = (v: number): string => (Math.round(v * 10) / 10).toString();

interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

/** Opening tag, title and (for an empty chart) the placeholder text. */
function svgOpen(f: Frame, title: string, id: string | undefined): string {
  const data = id ? ` data-chart="${escapeHtml(id)}"` : '';
  return (
    `<svg class="chart"${data} viewBox="0 0 ${f.width} ${f.height}" width="${f.width}" ` +
    `height="${f.height}" role="img" aria-label="${escapeHtml(title)}">` +
    `<title>${escapeHtml(title)}</title>` +
    `<text class="title" x="${f.left}" y="16">${escapeHtml(title)}</text>`
  );
}

function emptyChart(f: Frame, title: string, text: string, id: string | undefined): string {
  return (
    svgOpen(f, title, id) +
    `<rect class="grid" x="${f.left}" y="${f.top}" width="${f.width - f.left - f.right}" ` +
    `height="${f.height - f.top - f.bottom}" fill="none"/>` +
    `<text class="empty" x="${f.width / 2}" y="${fmt(f.top + (f.height - f.top - f.bottom) / 2 + 4)}" text-anchor="middle">${escapeHtml(text)}</text></svg>`
  );
}

/** Legend items laid out left to right, wrapping; returns the markup and the rows it used. */
function legend(
  items: { name: string; color: number; kind: 'line' | 'point' | 'box' }[],
  x0: number,
  y0: number,
  maxX: number,
): { svg: string; rows: number } {
  let x = x0;
  let y = y0;
  let rows = items.length > 0 ? 1 : 0;
  const parts: string[] = [];
  for (const it of items) {
    const w = 22 + Math.min(40, it.name.length) * 6.3 + 14;
    if (x + w > maxX && x > x0) {
      x = x0;
      y += 16;
      rows++;
    }
    const c = it.color % PALETTE.length;
    const swatch =
      it.kind === 'line'
        ? `<line class="avg s${c}" x1="${x}" y1="${y - 4}" x2="${x + 16}" y2="${y - 4}" stroke="${PALETTE[c]}"/>`
        : it.kind === 'point'
          ? `<circle class="f${c}" cx="${x + 8}" cy="${y - 4}" r="3.5" fill="${PALETTE[c]}"/>`
          : `<rect class="f${c}" x="${x + 2}" y="${y - 9}" width="12" height="10" fill="${PALETTE[c]}"/>`;
    const name = it.name.length > 40 ? it.name.slice(0, 39) + '…' : it.name;
    parts.push(`${swatch}<text x="${x + 22}" y="${y}">${escapeHtml(name)}</text>`);
    x += w;
  }
  return { svg: parts.join(''), rows };
}

/**
 * A line chart with axes, ticks, axis labels and a legend. Each series is drawn raw (thin) and as
 * a moving average (thick) when `smooth` > 1, with an optional ±band; long series are
 * downsampled to at most `maxPoints` points per polyline set. Polylines carry
 * data-series / data-kind attributes so tests (and curious readers of the source) can find them.
 */
export function lineChart(o: LineChartOptions): string {
  const width = o.width ?? 640;
  const series = o.series;
  const maxPoints = o.maxPoints ?? MAX_POINTS;
  const legendItems = series.map((s, i) => ({
    name: s.name,
    color: s.color ?? i,
    kind: s.style === 'points' ? ('point' as const) : ('line' as const),
  }));
  // Legend rows are known only after layout; lay it out once to size the top margin.
  const left = 62;
  const right = 16;
  const lg = legend(legendItems, left, 0, width - right);
  // At least one legend row, so an empty chart is as tall as its neighbours in a grid.
  const top = 30 + Math.max(1, lg.rows) * 16;
  const f: Frame = { width, height: (o.height ?? 260) + top - 30, left, right, top, bottom: 44 };

  // Data range over everything drawn (values, bands, marks).
  let xlo = Infinity;
  let xhi = -Infinity;
  let ylo = Infinity;
  let yhi = -Infinity;
  for (const s of series) {
    for (let i = 0; i < s.y.length; i++) {
      const y = finite(s.y[i]);
      const x = finite(s.x[i]);
      if (y === null || x === null) continue;
      const b = finite(s.band?.[i]) ?? 0;
      xlo = Math.min(xlo, x);
      xhi = Math.max(xhi, x);
      ylo = Math.min(ylo, y - b);
      yhi = Math.max(yhi, y + b);
    }
  }
  if (!Number.isFinite(xlo)) return emptyChart(f, o.title, o.emptyText ?? 'no data yet', o.id);
  for (const v of o.xInclude ?? []) {
    xlo = Math.min(xlo, v);
    xhi = Math.max(xhi, v);
  }
  for (const v of o.yInclude ?? []) {
    ylo = Math.min(ylo, v);
    yhi = Math.max(yhi, v);
  }
  const yt = niceTicks(ylo, yhi, 5);
  const xt = niceTicks(xlo, xhi, 6);
  const y0 = yt.ticks[0];
  const y1 = yt.ticks[yt.ticks.length - 1];
  // The x axis spans the data (steps start at 1, not at a round 0), unless the data is one point.
  const x0 = xhi > xlo ? xlo : xt.ticks[0];
  const x1 = xhi > xlo ? xhi : xt.ticks[xt.ticks.length - 1];
  const pw = width - f.left - f.right;
  const ph = f.height - f.top - f.bottom;
  const px = (x: number): number => f.left + ((x - x0) / (x1 - x0)) * pw;
  const py = (y: number): number => f.top + ph - ((y - y0) / (y1 - y0)) * ph;

  const parts: string[] = [svgOpen(f, o.title, o.id)];
  // Grid and ticks.
  for (const t of yt.ticks) {
    const y = fmt(py(t));
    parts.push(
      `<line class="grid" x1="${f.left}" x2="${width - f.right}" y1="${y}" y2="${y}" stroke="#888"/>` +
        `<text x="${f.left - 6}" y="${y}" dy="3.5" text-anchor="end">${formatTick(t, yt.step)}</text>`,
    );
  }
  for (const t of xt.ticks) {
    if (t < x0 - 1e-9 * (x1 - x0) || t > x1 + 1e-9 * (x1 - x0)) continue;
    const x = fmt(px(t));
    parts.push(
      `<line class="axis" x1="${x}" x2="${x}" y1="${f.top + ph}" y2="${f.top + ph + 4}" stroke="#888"/>` +
        `<text x="${x}" y="${f.top + ph + 16}" text-anchor="middle">${formatTick(t, xt.step)}</text>`,
    );
  }
  parts.push(
    `<line class="axis" x1="${f.left}" x2="${f.left}" y1="${f.top}" y2="${f.top + ph}" stroke="#888"/>` +
      `<line class="axis" x1="${f.left}" x2="${width - f.right}" y1="${f.top + ph}" y2="${f.top + ph}" stroke="#888"/>` +
      `<text x="${f.left + pw / 2}" y="${f.height - 8}" text-anchor="middle">${escapeHtml(o.xLabel)}</text>` +
      `<text x="14" y="${f.top + ph / 2}" text-anchor="middle" transform="rotate(-90 14 ${fmt(f.top + ph / 2)})">${escapeHtml(o.yLabel)}</text>`,
  );

  const pt = (x: number, y: number): string => `${fmt(px(x))},${fmt(py(y))}`;
  series.forEach((s, si) => {
    const c = (s.color ?? si) % PALETTE.length;
    const color = PALETTE[c];
    const name = escapeHtml(s.name);
    const ys = s.y.map((v, i) => (finite(s.x[i]) === null ? null : finite(v)));
    if (s.style === 'points') {
      for (const idx of drawIndices(s.x, ys, maxPoints)) {
        for (const i of idx) {
          parts.push(
            `<circle class="f${c}" data-series="${name}" data-kind="point" cx="${fmt(px(s.x[i]))}" ` +
              `cy="${fmt(py(ys[i] as number))}" r="3.5" fill="${color}"><title>${name} ${formatValue(s.x[i])}: ${formatValue(ys[i])}</title></circle>`,
          );
        }
      }
    } else {
      const idxs = drawIndices(s.x, ys, maxPoints);
      if (s.band) {
        for (const idx of idxs) {
          if (idx.length < 2) continue;
          const up = idx.map((i) => pt(s.x[i], (ys[i] as number) + (finite(s.band?.[i]) ?? 0)));
          const dn = idx
            .slice()
            .reverse()
            .map((i) => pt(s.x[i], (ys[i] as number) - (finite(s.band?.[i]) ?? 0)));
          parts.push(
            `<polygon class="band f${c}" data-series="${name}" data-kind="band" fill="${color}" fill-opacity="0.18" points="${[...up, ...dn].join(' ')}"/>`,
          );
        }
      }
      const smooth = s.smooth ?? 0;
      const avg = smooth > 1 ? movingAverage(ys, smooth) : null;
      const lines: { kind: string; cls: string; v: readonly (number | null)[]; idx: number[][] }[] =
        avg
          ? [
              { kind: 'raw', cls: 'raw', v: ys, idx: idxs },
              { kind: 'avg', cls: 'avg', v: avg, idx: drawIndices(s.x, avg, maxPoints) },
            ]
          : [{ kind: 'raw', cls: 'solo', v: ys, idx: idxs }];
      for (const l of lines) {
        for (const idx of l.idx) {
          const pts = idx.filter((i) => finite(l.v[i]) !== null);
          if (pts.length === 1) {
            // One point (a single step) is invisible as a polyline.
            parts.push(
              `<circle class="f${c}" data-series="${name}" data-kind="${l.kind}" cx="${fmt(px(s.x[pts[0]]))}" cy="${fmt(py(l.v[pts[0]] as number))}" r="3" fill="${color}"/>`,
            );
          } else if (pts.length > 1) {
            parts.push(
              `<polyline class="${l.cls} s${c}" data-series="${name}" data-kind="${l.kind}" fill="none" stroke="${color}" ` +
                `points="${pts.map((i) => pt(s.x[i], l.v[i] as number)).join(' ')}"/>`,
            );
          }
        }
      }
    }
    for (const m of s.marks ?? []) {
      if (finite(m.x) === null || finite(m.y) === null) continue;
      const cx = fmt(px(m.x));
      const cy = fmt(py(m.y));
      const anchor = px(m.x) > f.left + pw * 0.75 ? 'end' : 'start';
      const dx = anchor === 'end' ? -9 : 9;
      parts.push(
        `<circle class="mark" data-kind="mark" cx="${cx}" cy="${cy}" r="7" fill="none" stroke="#888"/>` +
          `<text x="${cx}" y="${cy}" dx="${dx}" dy="-8" text-anchor="${anchor}">${escapeHtml(m.label)}</text>`,
      );
    }
  });
  parts.push(legend(legendItems, left, 34, width - right).svg);
  const w = Math.max(0, ...series.map((s) => (s.style === 'points' ? 0 : (s.smooth ?? 0))));
  if (w > 1) {
    // Say what the two line weights are once, where the eye lands after the title.
    parts.push(
      `<text class="empty" x="${width - right}" y="${f.height - 8}" text-anchor="end">thin: each point · thick: moving average of ${w}</text>`,
    );
  }
  parts.push('</svg>');
  return parts.join('');
}

export interface Bar {
  label: string;
  value: number;
  /** Shown after the bar instead of the formatted value. */
  text?: string;
}

export interface BarChartOptions {
  title: string;
  bars: readonly Bar[];
  /** Unit appended to formatted values (e.g. 's'). */
  unit?: string;
  width?: number;
  emptyText?: string;
  id?: string;
}

/** Horizontal bars, one per label, longest first as given; labels on the left, values at the end. */
export function barChart(o: BarChartOptions): string {
  const width = o.width ?? 640;
  const labelW = Math.min(
    240,
    14 + Math.max(0, ...o.bars.map((b) => Math.min(36, b.label.length))) * 6.3,
  );
  const rowH = 20;
  const f: Frame = {
    width,
    height: 30 + Math.max(1, o.bars.length) * rowH + 12,
    left: labelW,
    right: 80,
    top: 30,
    bottom: 12,
  };
  const max = Math.max(0, ...o.bars.map((b) => (Number.isFinite(b.value) ? b.value : 0)));
  if (o.bars.length === 0) {
    return emptyChart(
      { ...f, height: 90, left: 20, bottom: 20 },
      o.title,
      o.emptyText ?? 'nothing to show',
      o.id,
    );
  }
  const pw = width - f.left - f.right;
  const parts = [svgOpen(f, o.title, o.id)];
  o.bars.forEach((b, i) => {
    const y = f.top + i * rowH;
    const v = Number.isFinite(b.value) ? Math.max(0, b.value) : 0;
    const w = max > 0 ? (v / max) * pw : 0;
    const label = b.label.length > 36 ? b.label.slice(0, 35) + '…' : b.label;
    const text = b.text ?? `${formatValue(b.value)}${o.unit ?? ''}`;
    parts.push(
      `<text x="${f.left - 6}" y="${y + 13}" text-anchor="end">${escapeHtml(label)}</text>` +
        `<rect class="f${i % PALETTE.length}" data-kind="bar" x="${f.left}" y="${y + 3}" width="${fmt(w)}" height="${rowH - 6}" fill="${PALETTE[i % PALETTE.length]}"><title>${escapeHtml(b.label)}: ${escapeHtml(text)}</title></rect>` +
        `<text x="${fmt(f.left + w + 5)}" y="${y + 13}">${escapeHtml(text)}</text>`,
    );
  });
  parts.push(
    `<line class="axis" x1="${f.left}" x2="${f.left}" y1="${f.top}" y2="${f.top + o.bars.length * rowH}" stroke="#888"/></svg>`,
  );
  return parts.join('');
}

export interface StackedRow {
  label: string;
  /** One value per `segments` name, in the same order (non-finite or negative count as 0). */
  values: readonly number[];
  /** Shown after the bar (default: the row's formatted sum with the unit). */
  text?: string;
}

export interface StackedBarOptions {
  title: string;
  /** Segment names, in stacking order; colour i is segment i. */
  segments: readonly string[];
  rows: readonly StackedRow[];
  unit?: string;
  width?: number;
  /**
   * 'share' scales every row to 100% (where the time goes); 'absolute' (default) scales rows
   * against the largest row's sum.
   */
  scale?: 'share' | 'absolute';
  emptyText?: string;
  id?: string;
}

/** Horizontal stacked bars with a legend; segments wide enough carry their value or share. */
export function stackedBar(o: StackedBarOptions): string {
  const width = o.width ?? 640;
  const labelW = Math.min(
    220,
    14 + Math.max(0, ...o.rows.map((r) => Math.min(32, r.label.length))) * 6.3,
  );
  const rowH = 28;
  const lg = legend(
    o.segments.map((name, i) => ({ name, color: i, kind: 'box' as const })),
    labelW,
    0,
    width - 16,
  );
  const top = 30 + lg.rows * 16 + 4;
  const f: Frame = {
    width,
    height: top + Math.max(1, o.rows.length) * rowH + 10,
    left: labelW,
    right: 90,
    top,
    bottom: 10,
  };
  const clean = (v: number): number => (Number.isFinite(v) && v > 0 ? v : 0);
  const sums = o.rows.map((r) => r.values.reduce((s, v) => s + clean(v), 0));
  const maxSum = Math.max(0, ...sums);
  if (o.rows.length === 0 || maxSum === 0) {
    return emptyChart(
      { ...f, height: 90, left: 20, top: 30, bottom: 20 },
      o.title,
      o.emptyText ?? 'nothing to show',
      o.id,
    );
  }
  const pw = width - f.left - f.right;
  const parts = [
    svgOpen(f, o.title, o.id),
    legend(
      o.segments.map((name, i) => ({ name, color: i, kind: 'box' as const })),
      labelW,
      34,
      width - 16,
    ).svg,
  ];
  o.rows.forEach((r, ri) => {
    const y = f.top + ri * rowH;
    const denom = o.scale === 'share' ? sums[ri] : maxSum;
    let x = f.left;
    parts.push(
      `<text x="${f.left - 6}" y="${y + 17}" text-anchor="end">${escapeHtml(r.label)}</text>`,
    );
    r.values.forEach((raw, si) => {
      const v = clean(raw);
      if (v === 0 || denom === 0) return;
      const w = (v / denom) * pw;
      const c = si % PALETTE.length;
      const share = sums[ri] > 0 ? (100 * v) / sums[ri] : 0;
      const name = o.segments[si] ?? `#${si}`;
      parts.push(
        `<rect class="f${c}" data-kind="segment" data-segment="${escapeHtml(name)}" x="${fmt(x)}" y="${y + 4}" width="${fmt(w)}" height="${rowH - 8}" fill="${PALETTE[c]}">` +
          `<title>${escapeHtml(name)}: ${formatValue(v)}${escapeHtml(o.unit ?? '')} (${share.toFixed(1)}%)</title></rect>`,
      );
      const label =
        o.scale === 'share' ? `${share.toFixed(0)}%` : `${formatValue(v)}${o.unit ?? ''}`;
      if (w > label.length * 6 + 6) {
        parts.push(
          `<text class="seg-label" x="${fmt(x + w / 2)}" y="${y + 18}" text-anchor="middle">${escapeHtml(label)}</text>`,
        );
      }
      x += w;
    });
    const text = r.text ?? `${formatValue(sums[ri])}${o.unit ?? ''}`;
    parts.push(`<text x="${fmt(x + 5)}" y="${y + 18}">${escapeHtml(text)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('');
}
