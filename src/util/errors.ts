// Typed errors. Every error rl4qe throws on bad input says what was expected, what was found,
// where (file, line, field, tensor, op) and what to do. Library code never calls process.exit;
// the CLI maps these classes to exit codes in one place (src/cli/main.ts).

export interface ErrorDetails {
  /** Where: a file path, `file:line`, a field path, a tensor name or an op name. */
  where?: string;
  /** What was expected. */
  expected?: string;
  /** What was found instead. */
  found?: string;
  /** What the user can do about it (printed as a HINT line). */
  hint?: string;
  cause?: unknown;
}

export class Rl4qeError extends Error {
  readonly where?: string;
  readonly expected?: string;
  readonly found?: string;
  readonly hint?: string;
  /** Exit code the CLI uses for this class of error. */
  readonly exitCode: number = 1;

  constructor(message: string, details: ErrorDetails = {}) {
    super(
      formatMessage(message, details),
      details.cause !== undefined ? { cause: details.cause } : undefined,
    );
    this.name = new.target.name;
    this.where = details.where;
    this.expected = details.expected;
    this.found = details.found;
    this.hint = details.hint;
  }
}

function formatMessage(message: string, d: ErrorDetails): string {
  const lines = [d.where ? `${d.where}: ${message}` : message];
  if (d.expected !== undefined) lines.push(`  expected: ${d.expected}`);
  if (d.found !== undefined) lines.push(`  found:    ${d.found}`);
  if (d.hint !== undefined) lines.push(`  HINT: ${d.hint}`);
  return lines.join('\n');
}

/** Invalid shapes, dtypes or arguments given to a tensor op. */
export class ShapeError extends Rl4qeError {
  override readonly exitCode = 2;
}
/** A tensor was used after release(). */
export class ReleasedTensorError extends Rl4qeError {}
/** A NaN or Inf appeared (RL4QE_CHECK_NAN=1). */
export class NumericError extends Rl4qeError {}
/** A file (GGUF, safetensors, JSONL, config, tokenizer) is malformed or unsupported. */
export class FormatError extends Rl4qeError {
  override readonly exitCode = 3;
}
/** User configuration or CLI flags are invalid. */
export class ConfigError extends Rl4qeError {
  override readonly exitCode = 2;
}
/** Something needs the network and cannot reach it, or a remote answered badly. */
export class NetworkError extends Rl4qeError {
  override readonly exitCode = 4;
}
/** A required file, model or environment is missing. */
export class NotFoundError extends Rl4qeError {
  override readonly exitCode = 3;
}
/** Feature not supported (an architecture, a quantisation type, a dtype on a backend). */
export class UnsupportedError extends Rl4qeError {
  override readonly exitCode = 3;
}
