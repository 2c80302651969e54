// Download progress on stderr: one line per file, redrawn in place on a terminal.
import type { PullProgress } from './download.js';

export function stderrProgress(): (p: PullProgress) => void {
  let last = 0;
  const tty = process.stderr.isTTY === true;
  const mib = (n: number): string => (n / 1048576).toFixed(1);
  return (p) => {
    const now = Date.now();
    if (p.phase === 'data' && (!tty || now - last < 200)) return;
    last = now;
    const total = p.total !== undefined ? ` / ${mib(p.total)} MiB` : '';
    const pct = p.total ? ` ${((100 * p.done) / p.total).toFixed(0)}%` : '';
    const line =
      p.phase === 'skip'
        ? `cached   ${p.file}`
        : p.phase === 'retry'
          ? `retry    ${p.file} (resuming at ${mib(p.done)} MiB)`
          : `${p.phase === 'done' ? 'done    ' : 'download'} ${p.file}  ${mib(p.done)} MiB${total}${pct}`;
    if (!tty) process.stderr.write(`${line}\n`);
    else if (p.phase === 'data') process.stderr.write(`\r${line}\x1b[K`);
    else process.stderr.write(`\r${line}\x1b[K\n`);
  };
}
