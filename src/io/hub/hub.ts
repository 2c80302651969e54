// Hugging Face Hub download (`rl4qe pull`). Uses the Hub's URL layout:
//   GET {endpoint}/api/models/{repo}/revision/{rev}?blobs=true  -> file list with sizes, git blob
//       ids and, for LFS files, their sha256
//   GET {endpoint}/{repo}/resolve/{rev}/{file}                  -> the file (redirects followed)
// Files go to {cacheDir}/{owner}--{name}/{rev}/ via `<file>.partial` (resumed with an HTTP Range
// request after a dropped connection or an interrupted run), are checked (sha256 for LFS files,
// the git blob SHA-1 otherwise) and renamed into place. Token from HF_TOKEN, endpoint from
// HF_ENDPOINT. Without network, a NetworkError names the file and how to provide it by hand.
import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { ConfigError, NetworkError, NotFoundError } from '../../util/errors.js';
import { cachePaths } from '../../util/paths.js';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

/**
 * The files of a Hugging Face model directory besides config.json and the weights: tokenizer,
 * chat template and generation defaults (what makes a directory a complete model).
 */
export const HF_SIDE_FILES = [
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'tokenizer.model',
  'vocab.json',
  'merges.txt',
  'chat_template.jinja',
  'chat_template.json',
] as const;

/** What `pull` fetches when no --include is given: config, tokenizer, safetensors weights. */
export const DEFAULT_INCLUDE = [
  'config.json',
  ...HF_SIDE_FILES,
  '*.safetensors',
  'model.safetensors.index.json',
];

export interface PullProgress {
  file: string;
  /** Bytes of this file present so far (including resumed bytes). */
  done: number;
  /** Total size when known. */
  total?: number;
  /** 'skip': already complete in the cache. */
  phase: 'start' | 'data' | 'done' | 'skip' | 'retry';
}

export interface PullOptions {
  /** "owner/name". */
  repo: string;
  /** Branch, tag or commit (default "main"). */
  revision?: string;
  /** Glob patterns of files to fetch (`*` within a path segment, `**` across); default DEFAULT_INCLUDE. */
  include?: string[];
  /** Default $HF_ENDPOINT or https://huggingface.co. */
  endpoint?: string;
  /** Default $HF_TOKEN. */
  token?: string;
  /** Default cachePaths.models(). */
  cacheDir?: string;
  /** Attempts per file for transient failures (dropped connection, 5xx); default 4. */
  attempts?: number;
  onProgress?: (p: PullProgress) => void;
  signal?: AbortSignal;
}

export interface PulledFile {
  path: string;
  size: number;
  sha256?: string;
  /** True when the file was already complete in the cache. */
  cached: boolean;
}

export interface PullResult {
  repo: string;
  revision: string;
  /** Commit sha the Hub resolved the revision to (when it said). */
  commit?: string;
  dir: string;
  files: PulledFile[];
}

const siblingSchema = z.object({
  rfilename: z.string(),
  size: z.number().int().nonnegative().optional(),
  blobId: z.string().optional(),
  lfs: z.object({ sha256: z.string(), size: z.number().int().nonnegative().optional() }).optional(),
});
const revisionSchema = z.object({
  id: z.string().optional(),
  sha: z.string().optional(),
  siblings: z.array(siblingSchema),
});
type Sibling = z.infer<typeof siblingSchema>;

const MANIFEST = '.rl4qe-pull.json';

/** Where `pull` stores a repo at a revision. */
export function repoCacheDir(
  repo: string,
  revision = 'main',
  cacheDir = cachePaths.models(),
): string {
  return path.join(cacheDir, repo.replace('/', '--'), revision.replace(/[/\\]/g, '--'));
}

function validateRepo(repo: string): void {
  if (!/^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(repo) || repo.includes('..')) {
    throw new ConfigError('invalid repository id', {
      where: 'REPO',
      expected: 'owner/name (letters, digits, "-", "_", ".")',
      found: repo,
    });
  }
}

/** Glob → RegExp: `**` any characters, `*` within a segment, `?` one character. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*' && glob[i + 1] === '*') {
      re += '.*';
      i++;
      if (glob[i + 1] === '/') i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

function safeRelPath(file: string, dir: string): string {
  const norm = path.posix.normalize(file);
  if (
    norm.startsWith('/') ||
    norm === '..' ||
    norm.startsWith('../') ||
    file.includes('\\') ||
    file.includes('\0') ||
    norm !== file
  ) {
    throw new NetworkError('the Hub listed a file with an unsafe path', {
      where: dir,
      expected: 'a relative path inside the repository',
      found: JSON.stringify(file),
    });
  }
  return norm;
}

/** Download a repository's files (config, tokenizer, weights by default) into the cache. */
export async function pullModel(opts: PullOptions): Promise<PullResult> {
  validateRepo(opts.repo);
  const revision = opts.revision ?? 'main';
  const endpoint = (opts.endpoint ?? process.env.HF_ENDPOINT ?? DEFAULT_ENDPOINT).replace(
    /\/+$/,
    '',
  );
  const token = opts.token ?? process.env.HF_TOKEN;
  const dir = repoCacheDir(opts.repo, revision, opts.cacheDir);
  const include = (opts.include?.length ? opts.include : DEFAULT_INCLUDE).map(globToRegExp);
  const attempts = opts.attempts ?? 4;
  const headers: Record<string, string> = { 'user-agent': 'rl4qe/0.1' };
  if (token) headers.authorization = `Bearer ${token}`;

  const listUrl = `${endpoint}/api/models/${opts.repo}/revision/${encodeURIComponent(revision)}?blobs=true`;
  let listing: z.infer<typeof revisionSchema>;
  try {
    const res = await withRetries(attempts, opts.signal, () =>
      request(listUrl, { headers, signal: opts.signal }, `${opts.repo}@${revision}`, !!token, dir),
    );
    const body = await res.json().catch((e: unknown) => {
      throw new NetworkError('the Hub answered with invalid JSON', {
        where: listUrl,
        found: String(e),
      });
    });
    const parsed = revisionSchema.safeParse(body);
    if (!parsed.success) {
      throw new NetworkError('unexpected file list from the Hub', {
        where: listUrl,
        expected: '{"sha": ..., "siblings": [{"rfilename": ...}]}',
        found: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '),
      });
    }
    listing = parsed.data;
  } catch (e) {
    // Offline but already pulled: use the cache.
    const cached = readManifest(dir);
    if (cached && e instanceof NetworkError && isConnectError(e)) return cached;
    throw e;
  }

  const wanted = listing.siblings.filter((s) => include.some((r) => r.test(s.rfilename)));
  if (wanted.length === 0) {
    throw new NotFoundError('no files of the repository match the include patterns', {
      where: `${opts.repo}@${revision}`,
      expected: (opts.include?.length ? opts.include : DEFAULT_INCLUDE).join(' '),
      found:
        listing.siblings
          .map((s) => s.rfilename)
          .slice(0, 20)
          .join(', ') || 'no files',
    });
  }
  fs.mkdirSync(dir, { recursive: true });
  const files: PulledFile[] = [];
  for (const s of wanted) {
    const rel = safeRelPath(s.rfilename, dir);
    const url = `${endpoint}/${opts.repo}/resolve/${encodeURIComponent(revision)}/${rel
      .split('/')
      .map(encodeURIComponent)
      .join('/')}`;
    files.push(
      await downloadFile({
        url,
        dest: path.join(dir, rel),
        sibling: s,
        headers,
        attempts,
        hasToken: !!token,
        onProgress: opts.onProgress,
        signal: opts.signal,
        offlineHint: dir,
      }),
    );
  }
  const result: PullResult = {
    repo: opts.repo,
    revision,
    commit: listing.sha,
    dir,
    files,
  };
  fs.writeFileSync(path.join(dir, MANIFEST), JSON.stringify(result, null, 2) + '\n');
  return result;
}

function readManifest(dir: string): PullResult | undefined {
  try {
    const m = JSON.parse(fs.readFileSync(path.join(dir, MANIFEST), 'utf8')) as PullResult;
    if (m.files.every((f) => fs.existsSync(f.path) && fs.statSync(f.path).size === f.size)) {
      return { ...m, files: m.files.map((f) => ({ ...f, cached: true })) };
    }
  } catch {
    // no manifest: nothing cached
  }
  return undefined;
}

const OFFLINE_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
]);

function rootCause(e: unknown): { code?: string; message: string } {
  let cur: unknown = e;
  for (let i = 0; i < 5 && cur instanceof Error && cur.cause !== undefined; i++) cur = cur.cause;
  const code = (cur as { code?: unknown } | null)?.code;
  return {
    code: typeof code === 'string' ? code : undefined,
    message: cur instanceof Error ? cur.message : String(cur),
  };
}

function isConnectError(e: NetworkError): boolean {
  return (e as NetworkError & { offline?: boolean }).offline === true;
}

async function request(
  url: string,
  init: { headers: Record<string, string>; signal?: AbortSignal },
  what: string,
  hasToken: boolean,
  offlineDir?: string,
): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, { headers: init.headers, signal: init.signal, redirect: 'follow' });
  } catch (e) {
    if (init.signal?.aborted) throw e;
    const { code, message } = rootCause(e);
    if (code === undefined || !OFFLINE_CODES.has(code)) {
      // Reset or closed connection: worth another attempt.
      throw transientError(`connection failed while requesting ${what}`, {
        where: url,
        found: `${code ?? ''} ${message}`.trim(),
        cause: e,
      });
    }
    const offline = new NetworkError(`cannot reach the Hub to download ${what}`, {
      where: url,
      found: `${code} ${message}`,
      hint: `offline? copy the files into ${offlineDir ?? 'the cache directory'} by hand (same relative paths as in the repository), or set HF_ENDPOINT to a reachable mirror`,
      cause: e,
    });
    (offline as NetworkError & { offline?: boolean }).offline = true;
    throw offline;
  }
  if (res.ok || res.status === 206 || res.status === 416) return res;
  await res.body?.cancel().catch(() => undefined);
  if (res.status === 401 || res.status === 403) {
    throw new NetworkError(`the Hub refused access to ${what} (HTTP ${res.status})`, {
      where: url,
      hint: hasToken
        ? 'the token in HF_TOKEN lacks access: accept the model licence on its Hub page or use another token'
        : 'this repository needs authentication: set HF_TOKEN to a Hugging Face access token',
    });
  }
  if (res.status === 404) {
    throw new NotFoundError(`not found on the Hub: ${what}`, {
      where: url,
      found: 'HTTP 404',
      hint: 'check the repository id, the --revision and the file name',
    });
  }
  throw new NetworkError(`the Hub answered HTTP ${res.status} for ${what}`, {
    where: url,
    found: `${res.status} ${res.statusText}`,
  });
}

interface DownloadArgs {
  url: string;
  dest: string;
  sibling: Sibling;
  headers: Record<string, string>;
  attempts: number;
  hasToken: boolean;
  onProgress?: (p: PullProgress) => void;
  signal?: AbortSignal;
  offlineHint: string;
}

function expectedSize(s: Sibling): number | undefined {
  return s.lfs?.size ?? s.size;
}

/** Hash the file the way the Hub identifies it: sha256 for LFS, git blob SHA-1 otherwise. */
function newHasher(s: Sibling, size: number | undefined): { h: Hash; want?: string; kind: string } {
  if (s.lfs) return { h: createHash('sha256'), want: s.lfs.sha256.toLowerCase(), kind: 'sha256' };
  const h = createHash('sha1');
  if (s.blobId && size !== undefined) {
    h.update(`blob ${size}\0`);
    return { h, want: s.blobId.toLowerCase(), kind: 'git blob sha1' };
  }
  return { h, kind: 'none' };
}

async function hashExisting(file: string, h: Hash): Promise<void> {
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 22 })) {
    h.update(chunk as Buffer);
  }
}

async function downloadFile(a: DownloadArgs): Promise<PulledFile> {
  const { sibling: s, dest } = a;
  const size = expectedSize(s);
  const name = s.rfilename;
  const partial = `${dest}.partial`;
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  // Already complete? Verify rather than trust (cheap next to a download).
  if (fs.existsSync(dest) && (size === undefined || fs.statSync(dest).size === size)) {
    const { h, want } = newHasher(s, fs.statSync(dest).size);
    if (want === undefined) {
      a.onProgress?.({ file: name, done: fs.statSync(dest).size, total: size, phase: 'skip' });
      return { path: dest, size: fs.statSync(dest).size, cached: true };
    }
    await hashExisting(dest, h);
    if (h.digest('hex') === want) {
      a.onProgress?.({ file: name, done: fs.statSync(dest).size, total: size, phase: 'skip' });
      return { path: dest, size: fs.statSync(dest).size, sha256: s.lfs?.sha256, cached: true };
    }
  }
  let lastError: unknown;
  for (let attempt = 1; attempt <= a.attempts; attempt++) {
    try {
      return await downloadOnce(a, partial, size);
    } catch (e) {
      lastError = e;
      const transient =
        e instanceof NetworkError &&
        (e as NetworkError & { transient?: boolean }).transient === true;
      if (!transient || attempt === a.attempts || a.signal?.aborted) throw e;
      a.onProgress?.({ file: name, done: fileSize(partial), total: size, phase: 'retry' });
      await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
    }
  }
  throw lastError;
}

function isTransient(e: unknown): boolean {
  return (
    e instanceof NetworkError && (e as NetworkError & { transient?: boolean }).transient === true
  );
}

async function withRetries<T>(
  attempts: number,
  signal: AbortSignal | undefined,
  fn: () => Promise<T>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (!isTransient(e) || attempt >= attempts || signal?.aborted) throw e;
      await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
    }
  }
}

function fileSize(p: string): number {
  try {
    return fs.statSync(p).size;
  } catch {
    return 0;
  }
}

function transientError(
  msg: string,
  d: ConstructorParameters<typeof NetworkError>[1],
): NetworkError {
  const e = new NetworkError(msg, d) as NetworkError & { transient: boolean };
  e.transient = true;
  return e;
}

async function downloadOnce(
  a: DownloadArgs,
  partial: string,
  size: number | undefined,
): Promise<PulledFile> {
  const s = a.sibling;
  const name = s.rfilename;
  let have = fileSize(partial);
  if (size !== undefined && have > size) {
    fs.rmSync(partial, { force: true });
    have = 0;
  }
  const headers = { ...a.headers };
  if (have > 0) headers.range = `bytes=${have}-`;
  let res: Response;
  try {
    res = await request(a.url, { headers, signal: a.signal }, name, a.hasToken, a.offlineHint);
  } catch (e) {
    if (
      e instanceof NetworkError &&
      !(e instanceof NotFoundError) &&
      /HTTP 5\d\d/.test(e.message)
    ) {
      throw transientError(e.message, { where: a.url, cause: e });
    }
    throw e;
  }
  if (res.status === 416) {
    // Our partial is not a prefix the server can continue: start over.
    await res.body?.cancel().catch(() => undefined);
    fs.rmSync(partial, { force: true });
    throw transientError(`range not satisfiable for ${name}; restarting`, { where: a.url });
  }
  const resumed = res.status === 206 && have > 0;
  if (!resumed) have = 0;
  const total = size ?? (Number(res.headers.get('content-length')) || undefined);
  const { h, want, kind } = newHasher(s, size);
  if (resumed) await hashExisting(partial, h);
  a.onProgress?.({ file: name, done: have, total, phase: 'start' });
  const fh = await fs.promises.open(partial, resumed ? 'a' : 'w');
  let done = have;
  try {
    if (!res.body) throw transientError(`empty response body for ${name}`, { where: a.url });
    const reader = res.body.getReader();
    for (;;) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (e) {
        if (a.signal?.aborted) throw e;
        throw transientError(`connection dropped while downloading ${name}`, {
          where: a.url,
          found: `${done} of ${total ?? '?'} bytes`,
          cause: e,
        });
      }
      if (chunk.done) break;
      h.update(chunk.value);
      await fh.write(chunk.value);
      done += chunk.value.length;
      a.onProgress?.({ file: name, done, total, phase: 'data' });
    }
  } finally {
    await fh.close();
  }
  if (size !== undefined && done !== size) {
    throw transientError(`incomplete download of ${name}`, {
      where: a.url,
      expected: `${size} bytes`,
      found: `${done}`,
    });
  }
  if (want !== undefined) {
    const got = h.digest('hex');
    if (got !== want) {
      fs.rmSync(partial, { force: true });
      throw new NetworkError(`checksum mismatch for ${name}`, {
        where: a.url,
        expected: `${kind} ${want}`,
        found: got,
        hint: 'the download was corrupted or the server sent another file; run the command again',
      });
    }
  }
  fs.renameSync(partial, a.dest);
  a.onProgress?.({ file: name, done, total, phase: 'done' });
  return { path: a.dest, size: done, sha256: s.lfs?.sha256, cached: false };
}

/** A progress printer for stderr (one line per file, redrawn in place on a TTY). */
export function stderrProgress(): (p: PullProgress) => void {
  let last = 0;
  const tty = process.stderr.isTTY === true;
  const mib = (n: number) => (n / 1048576).toFixed(1);
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
