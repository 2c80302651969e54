// Progress of a training run: a one-line bar on a TTY (rewritten in place, with ETA, reward,
// pass rate, tokens/s, generator calls/cost and cache hits), JSON lines otherwise (one per step
// and validation, for logs and CI), or nothing. A dedicated renderer rather than a progress-bar
// package: the line is a few fields of the step record, and the JSON mode is the one that matters
// off a terminal.
import type { StepRecord, ValRecord } from './records.js';

export type ProgressMode = 'bar' | 'json' | 'quiet';

export interface ProgressOptions {
  mode: ProgressMode;
  total: number;
  /** Where to write (default process.stderr). */
  out?: NodeJS.WritableStream & { columns?: number };
}

const fmt = (x: number | null, d = 3): string => (x === null ? '–' : x.toFixed(d));

function duration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(sec).padStart(2, '0')}s`;
}

export class Progress {
  private readonly out: NodeJS.WritableStream & { columns?: number };
  private t0 = 0;
  private first = 0;
  private lastVal: ValRecord | null = null;
  private drawn = false;
  constructor(private readonly opts: ProgressOptions) {
    this.out = opts.out ?? process.stderr;
  }

  start(step: number): void {
    this.t0 = performance.now();
    this.first = step;
    if (this.opts.mode === 'json')
      this.out.write(JSON.stringify({ event: 'start', step, total: this.opts.total }) + '\n');
    else if (this.opts.mode === 'bar') this.draw(step, null);
  }

  step(r: StepRecord): void {
    if (this.opts.mode === 'json') {
      this.out.write(
        JSON.stringify({
          event: 'step',
          step: r.step,
          total: this.opts.total,
          reward: r.reward,
          passRate: r.passRate,
          loss: r.loss,
          kl: r.kl,
          gradNorm: r.gradNorm,
          scored: r.scored,
          samples: r.samples,
          sampleTokensPerSec: r.sampleTokensPerSec,
          updateTokensPerSec: r.updateTokensPerSec,
          generator: r.generator,
          seconds: r.times.total,
        }) + '\n',
      );
    } else if (this.opts.mode === 'bar') this.draw(r.step, r);
  }

  validation(v: ValRecord): void {
    this.lastVal = v;
    if (this.opts.mode === 'json')
      this.out.write(JSON.stringify({ event: 'validation', ...v }) + '\n');
  }

  private draw(step: number, r: StepRecord | null): void {
    const total = this.opts.total;
    const done = step - this.first;
    const sec = (performance.now() - this.t0) / 1000;
    const eta = done > 0 ? (sec / done) * (total - step) : NaN;
    const width = 20;
    const filled = Math.round((width * step) / Math.max(1, total));
    const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
    const parts = [`${bar} ${step}/${total}`, `${duration(sec)}<${duration(eta)}`];
    if (r) {
      parts.push(`reward ${fmt(r.reward)}`);
      if (r.passRate !== null) parts.push(`pass ${(100 * r.passRate).toFixed(0)}%`);
      parts.push(`loss ${fmt(r.loss, 4)}`);
      parts.push(`${r.sampleTokensPerSec.toFixed(0)}/${r.updateTokensPerSec.toFixed(0)} tok/s`);
      if (r.generator.calls > 0) {
        parts.push(
          `gen ${r.generator.calls} (${r.generator.cached} cached, ${r.generator.failures} failed)`,
        );
        if (r.generator.costUsd > 0) parts.push(`$${r.generator.costUsd.toFixed(3)}`);
      }
    }
    if (this.lastVal) parts.push(`val ${this.lastVal.metric} ${fmt(this.lastVal.value)}`);
    let line = parts.join(' · ');
    const cols = this.out.columns ?? 120;
    if (line.length > cols - 1) line = line.slice(0, cols - 1);
    this.out.write(`\r\x1b[2K${line}`);
    this.drawn = true;
  }

  end(): void {
    if (this.opts.mode === 'bar' && this.drawn) this.out.write('\n');
  }
}
