// Progress of a long command, one rule for all (docs/cli.md, "--json"): always on stderr, so stdout
// carries only the command's result; readable lines on a terminal, JSON lines otherwise (a pipe,
// a file, CI) and whenever --json is given; nothing with --quiet.
//   rl4qe eval: evaluating arm untrained ...                         (a terminal)
//   {"command":"eval","time":"2026-12-08T01:02:03.456Z","message":"evaluating arm untrained ..."}
export interface CliProgressOptions {
  /** --json: JSON lines even on a terminal. */
  json?: boolean;
  /** --quiet: nothing. */
  quiet?: boolean;
  /** Where lines go (default process.stderr). */
  stderr?: (s: string) => void;
  /** Whether that is a terminal (default process.stderr.isTTY). */
  isTTY?: boolean;
}

/** One progress line: a message, and for JSON lines any structured fields (counts, names). */
export type CliProgress = (message: string, fields?: Record<string, unknown>) => void;

export function progressMode(o: CliProgressOptions): 'quiet' | 'json' | 'text' {
  if (o.quiet) return 'quiet';
  return o.json === true || (o.isTTY ?? process.stderr.isTTY) !== true ? 'json' : 'text';
}

export function cliProgress(command: string, o: CliProgressOptions = {}): CliProgress {
  const write = o.stderr ?? ((s: string): void => void process.stderr.write(s));
  const mode = progressMode(o);
  if (mode === 'quiet') return () => {};
  if (mode === 'text') return (message) => write(`rl4qe ${command}: ${message}\n`);
  return (message, fields) =>
    write(JSON.stringify({ command, time: new Date().toISOString(), message, ...fields }) + '\n');
}
