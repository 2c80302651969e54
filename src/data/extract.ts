// Code extraction from generator output: the ONE copy in rl4qe (generators, sandbox, rewards and
// evaluation all call extractCode). Handles, in this order:
//   1. <think>…</think> reasoning, dropped;
//   2. <answer>…</answer> (the paper's generator format; an unclosed <answer> runs to the end);
//   3. markdown fences (the first python-tagged or untagged block; an unclosed fence runs to the
//      end);
//   4. DS-1000 completion markers: an echoed scaffold up to the last `BEGIN SOLUTION` line, a
//      leading `<code>`, and the stop
//      markers `</code>`, `# SOLUTION END`, `END SOLUTION` (the text from the marker's line on is
//      cut);
//   5. DS-1000 function-body problems (prompts ending in `### BEGIN SOLUTION` inside `def f(...)`):
//      a repeated `def f(...)` header is dropped and the body is indented by exactly 4 spaces,
//      because code_context inserts the solution under its own `def f(...):` line.
// The result has no leading blank lines and no trailing whitespace, and ends with one newline
// unless it is empty. Leading spaces of the first line are kept (indentation matters).

export const DS1000_STOP_MARKERS = ['</code>', '# SOLUTION END', 'END SOLUTION'] as const;

export interface ExtractOptions {
  /**
   * The DS-1000 prompt of the problem, if any. Enables the function-body rule (5) when the prompt
   * ends inside a function (`### BEGIN SOLUTION`). Stop markers (4) apply regardless.
   */
  ds1000Prompt?: string;
  /** Apply the DS-1000 stop markers (default true). */
  ds1000Markers?: boolean;
}

export type ExtractedVia = 'answer' | 'fence' | 'raw';

export interface Extracted {
  code: string;
  /** Which wrapper the code was found in. */
  via: ExtractedVia;
  /** The DS-1000 stop marker that cut the code, if any. */
  stoppedAt?: string;
}

const THINK_RE = /<think>[\s\S]*?<\/think>/g;
const FENCE_OPEN_RE = /(^|\n)[ \t]*(`{3,}|~{3,})[ \t]*([^\s`]*)[^\n]*\n/g;
const PY_LANGS = new Set(['', 'python', 'py', 'python3', 'py3', 'ipython', 'pycon']);

/** The first fenced block (python-tagged or untagged preferred), or undefined. */
function firstFence(text: string): string | undefined {
  FENCE_OPEN_RE.lastIndex = 0;
  let first: string | undefined;
  for (let m = FENCE_OPEN_RE.exec(text); m !== null; m = FENCE_OPEN_RE.exec(text)) {
    const fence = m[2]!;
    const lang = m[3]!.toLowerCase().replace(/[^a-z0-9].*$/, '');
    const start = m.index + m[0].length;
    // The closing fence: a line starting with the same fence characters, at least as long.
    const closeRe = new RegExp(
      `(^|\\n)[ \\t]*${fence[0] === '`' ? '`' : '~'}{${fence.length},}[ \\t]*(?=\\n|$)`,
      'g',
    );
    closeRe.lastIndex = start - 1;
    let end = text.length;
    let resume = text.length;
    for (let c = closeRe.exec(text); c !== null; c = closeRe.exec(text)) {
      if (c.index + c[1]!.length >= start) {
        end = c.index;
        resume = c.index + c[0].length;
        break;
      }
    }
    if (end === text.length) {
      // No closing fence line: accept a fence glued to the end of a code line (`x = 1```).
      const glued = new RegExp(
        `${fence[0] === '`' ? '`' : '~'}{${fence.length},}[ \\t]*(?=\\n|$)`,
        'g',
      );
      glued.lastIndex = start;
      const g = glued.exec(text);
      if (g) {
        end = g.index;
        resume = g.index + g[0].length;
      }
    }
    const body = text.slice(start, end);
    if (PY_LANGS.has(lang)) return body;
    first ??= body;
    FENCE_OPEN_RE.lastIndex = resume;
  }
  return first;
}

/** Cuts at the first DS-1000 stop marker; the marker's line goes if it holds only the marker. */
function cutAtStopMarker(code: string): { code: string; stoppedAt?: string } {
  let best = -1;
  let which: string | undefined;
  for (const mk of DS1000_STOP_MARKERS) {
    const i = code.indexOf(mk);
    if (i >= 0 && (best < 0 || i < best)) {
      best = i;
      which = mk;
    }
  }
  if (best < 0) return { code };
  const lineStart = code.lastIndexOf('\n', best - 1) + 1;
  const before = code.slice(lineStart, best);
  const cut = /^[\s#]*$/.test(before) ? lineStart : best;
  return { code: code.slice(0, cut), stoppedAt: which };
}

/** Removes an echoed scaffold head: leading `BEGIN SOLUTION` and/or `<code>` lines. */
function dropEchoedHead(code: string): string {
  let c = code.replace(/^\s*\n/, '');
  for (;;) {
    const m = /^[ \t]*(?:#+[ \t]*)?(?:BEGIN SOLUTION|<code>)[ \t]*(?:\n|$)/.exec(c);
    if (!m) return c;
    c = c.slice(m[0].length);
  }
}

/** The `def name(...)` header a DS-1000 function-body prompt ends inside, if it does. */
export function ds1000FunctionHeader(prompt: string): { name: string; line: string } | undefined {
  if (!/###\s*BEGIN SOLUTION\s*$/.test(prompt)) return undefined;
  const lines = prompt.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = /^def\s+([A-Za-z_]\w*)\s*\(/.exec(lines[i]!);
    if (m) return { name: m[1]!, line: lines[i]! };
  }
  return undefined;
}

function indentOf(line: string): number {
  return line.length - line.trimStart().length;
}

/** Re-indents a function body so its least-indented non-blank line sits at 4 spaces. */
export function indentBody(code: string, width = 4): string {
  const lines = code.replace(/\t/g, '    ').split('\n');
  const nonBlank = lines.filter((l) => l.trim() !== '');
  if (nonBlank.length === 0) return '';
  const min = Math.min(...nonBlank.map(indentOf));
  const pad = ' '.repeat(width);
  return lines.map((l) => (l.trim() === '' ? '' : pad + l.slice(min))).join('\n');
}

/** For function-body problems: drop a repeated `def name(...)` header and fix the indentation. */
function fixFunctionBody(code: string, fname: string): string {
  const lines = code.split('\n');
  const defRe = new RegExp(`^\\s*def\\s+${fname}\\s*\\(`);
  const di = lines.findIndex((l) => defRe.test(l));
  let body = code;
  if (di >= 0) {
    // Skip the (possibly multi-line) signature up to the line ending with ':'.
    let j = di;
    while (j < lines.length && !/:\s*(#.*)?$/.test(lines[j]!)) j++;
    const defIndent = indentOf(lines[di]!);
    const rest = lines.slice(j + 1);
    // The body ends at the first non-blank line indented no deeper than the def (e.g. a call
    // `result = f(df)` after the function): code outside the function is dropped. Comment lines
    // do not end it (Python ignores their indentation).
    const end = rest.findIndex(
      (l) => l.trim() !== '' && !l.trimStart().startsWith('#') && indentOf(l) <= defIndent,
    );
    body = (end >= 0 ? rest.slice(0, end) : rest).join('\n');
  }
  return indentBody(body);
}

function finish(code: string): string {
  const c = code.replace(/^(?:[ \t]*\n)+/, '').replace(/\s+$/, '');
  return c === '' ? '' : c + '\n';
}

/** Extracts the code from a generator's output; see the file comment for the rules. */
export function extractCodeDetailed(output: string, opts: ExtractOptions = {}): Extracted {
  let text = output.replace(/\r\n/g, '\n').replace(THINK_RE, '');
  // An unclosed <think> followed by <answer>: drop up to the answer.
  const openThink = text.indexOf('<think>');
  if (openThink >= 0 && text.indexOf('<answer>', openThink) >= 0) {
    text = text.slice(0, openThink) + text.slice(text.indexOf('<answer>', openThink));
  }
  let via: ExtractedVia = 'raw';
  const a = text.indexOf('<answer>');
  if (a >= 0) {
    const start = a + '<answer>'.length;
    const e = text.indexOf('</answer>', start);
    text = text.slice(start, e >= 0 ? e : text.length);
    via = 'answer';
  }
  const fenced = firstFence(text);
  if (fenced !== undefined) {
    text = fenced;
    if (via === 'raw') via = 'fence';
  }
  let stoppedAt: string | undefined;
  if (opts.ds1000Markers !== false) {
    // An echoed scaffold (`A: <code>…</code> BEGIN SOLUTION <code>`): the solution follows the
    // last BEGIN SOLUTION line.
    const b = text.lastIndexOf('BEGIN SOLUTION');
    if (b >= 0) {
      const eol = text.indexOf('\n', b);
      text = eol >= 0 ? text.slice(eol + 1) : '';
    }
    text = dropEchoedHead(text);
    const cut = cutAtStopMarker(text);
    text = cut.code;
    stoppedAt = cut.stoppedAt;
  }
  const header =
    opts.ds1000Prompt !== undefined ? ds1000FunctionHeader(opts.ds1000Prompt) : undefined;
  if (header) text = fixFunctionBody(text, header.name);
  const out: Extracted = { code: finish(text), via };
  if (stoppedAt !== undefined) out.stoppedAt = stoppedAt;
  return out;
}

/** Extracts the code from a generator's output (the code only). */
export function extractCode(output: string, opts: ExtractOptions = {}): string {
  return extractCodeDetailed(output, opts).code;
}
