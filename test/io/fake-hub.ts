// A local HTTP server on 127.0.0.1 that speaks the parts of the Hugging Face Hub's HTTP API that
// @huggingface/hub and Python's huggingface_hub use to download, served from memory:
//   GET  /api/{models|datasets}/{repo}/revision/{rev}     repo info with the commit ("sha") and siblings
//   GET  /api/{models|datasets}/{repo}/tree/{rev}[/dir]   file list (oid, size, lfs {oid, size})
//   POST /api/{models|datasets}/{repo}/paths-info/{rev}   per-path info with lastCommit
//   HEAD|GET /[datasets/]{repo}/resolve/{rev}/{path}      the file: ETag / X-Linked-Etag,
//        X-Repo-Commit, X-Linked-Size, Range requests (bytes=a-b, bytes=a-)
// plus faults: a connection dropped mid-file, bytes that do not match the checksum, 401 without
// the token, 404s with the Hub's X-Error-Code. Every request is logged.
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeFile {
  data: Buffer;
  lfs?: boolean;
  /** Serve this many bytes, then destroy the socket (the first `dropTimes` full requests). */
  dropAfter?: number;
  dropTimes?: number;
  /** Serve bytes that differ from the listing's checksum. */
  corrupt?: boolean;
}

export interface FakeRepo {
  files: Record<string, FakeFile>;
  /** Requests must carry `Authorization: Bearer <token>`. */
  token?: string;
  /** The commit every revision resolves to (default: sha1 of the repo id). */
  sha?: string;
  /** Revisions that exist besides main and the sha. */
  revisions?: string[];
}

export interface LoggedRequest {
  method: string;
  url: string;
  range?: string;
  auth?: string;
}

export function gitBlobSha1(b: Buffer): string {
  return createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
}
export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Repos are keyed "org/name" (models) or "datasets/org/name". */
export async function fakeHub(repos: Record<string, FakeRepo>) {
  const log: LoggedRequest[] = [];
  const shaOf = (key: string, r: FakeRepo): string =>
    r.sha ?? createHash('sha1').update(key).digest('hex');
  const entryOf = (name: string, f: FakeFile, sha: string) => ({
    type: 'file',
    path: name,
    size: f.lfs ? 134 : f.data.length,
    oid: f.lfs ? gitBlobSha1(Buffer.from(`pointer ${name}`)) : gitBlobSha1(f.data),
    ...(f.lfs ? { lfs: { oid: sha256(f.data), size: f.data.length, pointerSize: 134 } } : {}),
    lastCommit: { id: sha, title: 'commit', date: '2026-01-01T00:00:00.000Z' },
  });
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const method = req.method ?? 'GET';
    log.push({
      method,
      url: decodeURIComponent(url.pathname),
      range: req.headers.range,
      auth: req.headers.authorization,
    });
    if (url.pathname === '/__log') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(log.filter((l) => l.url !== '/__log')));
      return;
    }
    const notFound = (code: string, msg: string): void => {
      res.writeHead(404, { 'content-type': 'application/json', 'x-error-code': code });
      res.end(JSON.stringify({ error: msg }));
    };
    const api =
      /^\/api\/(models|datasets)\/([^/]+\/[^/]+)\/(revision|tree|paths-info)\/([^/]+)(?:\/(.*))?$/.exec(
        url.pathname,
      );
    const resolve = /^\/(datasets\/)?([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const isDataset = api ? api[1] === 'datasets' : resolve ? resolve[1] !== undefined : false;
    const repoId = api?.[2] ?? resolve?.[2];
    const key = repoId ? (isDataset ? `datasets/${repoId}` : repoId) : '';
    const repo = repos[key];
    if (!repo) return notFound('RepositoryNotFound', 'Repository not found');
    if (repo.token && req.headers.authorization !== `Bearer ${repo.token}`) {
      res.writeHead(401, { 'content-type': 'application/json', 'x-error-code': 'RepoNotFound' });
      res.end(JSON.stringify({ error: 'Invalid credentials in Authorization header' }));
      return;
    }
    const sha = shaOf(key, repo);
    const rev = decodeURIComponent((api?.[4] ?? resolve?.[3]) as string);
    if (![sha, 'main', 'HEAD', ...(repo.revisions ?? [])].includes(rev)) {
      return notFound('RevisionNotFound', `Invalid rev id: ${rev}`);
    }
    if (api) {
      const kind = api[3];
      const json = (body: unknown): void => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (kind === 'revision') {
        return json({
          _id: `id-${key}`,
          id: repoId,
          sha,
          private: !!repo.token,
          lastModified: '2026-01-01T00:00:00.000Z',
          siblings: Object.keys(repo.files).map((rfilename) => ({ rfilename })),
        });
      }
      if (kind === 'tree') {
        const dir = api[5] ? `${decodeURIComponent(api[5])}/` : '';
        const recursive = url.searchParams.get('recursive') === 'true';
        const out: unknown[] = [];
        const dirs = new Set<string>();
        for (const [name, f] of Object.entries(repo.files)) {
          if (!name.startsWith(dir)) continue;
          const rest = name.slice(dir.length);
          const parts = rest.split('/');
          for (let i = 1; i < parts.length && (recursive || i === 1); i++) {
            dirs.add(dir + parts.slice(0, i).join('/'));
          }
          if (recursive || parts.length === 1) {
            const { lastCommit: _l, ...e } = entryOf(name, f, sha);
            out.push(e);
          }
        }
        for (const d of dirs)
          out.push({ type: 'directory', path: d, size: 0, oid: 'd'.repeat(40) });
        return json(out);
      }
      // paths-info (POST, JSON body {paths, expand})
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const paths = (JSON.parse(body || '{}') as { paths?: string[] }).paths ?? [];
        json(paths.flatMap((p) => (repo.files[p] ? [entryOf(p, repo.files[p]!, sha)] : [])));
      });
      return;
    }
    const name = decodeURIComponent(resolve![4]!);
    const f = repo.files[name];
    if (!f) return notFound('EntryNotFound', `${name} does not exist on "${rev}"`);
    const body = f.corrupt ? Buffer.from(f.data).fill(0x41, 0, 4) : f.data;
    const headers: Record<string, string | number> = {
      'x-repo-commit': sha,
      'accept-ranges': 'bytes',
      'content-type': 'application/octet-stream',
    };
    if (f.lfs) {
      headers['x-linked-etag'] = `"${sha256(f.data)}"`;
      headers['x-linked-size'] = f.data.length;
      headers.etag = `"${sha256(f.data)}"`;
    } else headers.etag = `"${gitBlobSha1(f.data)}"`;
    let status = 200;
    let out = body;
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (m) {
      const start = Number(m[1]);
      const end = m[2] === '' ? body.length - 1 : Math.min(Number(m[2]), body.length - 1);
      if (start >= body.length) {
        res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
        return;
      }
      headers['content-range'] = `bytes ${start}-${end}/${body.length}`;
      out = body.subarray(start, end + 1);
      status = 206;
    }
    headers['content-length'] = out.length;
    res.writeHead(status, headers);
    if (method === 'HEAD') {
      res.end();
      return;
    }
    if (f.dropAfter !== undefined && (f.dropTimes ?? 1) > 0 && out.length > f.dropAfter) {
      f.dropTimes = (f.dropTimes ?? 1) - 1;
      res.write(out.subarray(0, f.dropAfter), () => res.destroy());
      return;
    }
    res.end(out);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    endpoint,
    log,
    /** Requests that fetched file bytes (not the 1-byte probes, not HEAD). */
    downloads: (file?: string) =>
      log.filter(
        (l) =>
          l.method === 'GET' &&
          l.url.includes('/resolve/') &&
          l.range !== 'bytes=0-0' &&
          (file === undefined || l.url.endsWith(`/${file}`)),
      ),
    shaOf: (key: string) => shaOf(key, repos[key]!),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** The spec of a fake Hub in another process (see fake-hub-process.ts): files by path or text. */
export interface FakeHubSpec {
  repos: Record<
    string,
    Omit<FakeRepo, 'files'> & {
      files: Record<string, { path?: string; text?: string; lfs?: boolean }>;
    }
  >;
}

/**
 * A fake Hub in a child process, for code that blocks the event loop while it downloads (the
 * synchronous model resolver runs its download in a child and waits): an in-process server could
 * not answer. `log()` fetches its request log.
 */
export async function fakeHubProcess(spec: FakeHubSpec) {
  const { spawn } = await import('node:child_process');
  const script = new URL('./fake-hub-process.js', import.meta.url);
  const child = spawn(process.execPath, [script.pathname, JSON.stringify(spec)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const endpoint = await new Promise<string>((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (c: Buffer) => {
      buf += c.toString();
      const m = /(http:\/\/127\.0\.0\.1:\d+)\n/.exec(buf);
      if (m) resolve(m[1]!);
    });
    child.on('exit', (code) => reject(new Error(`fake hub process exited with ${code}`)));
  });
  return {
    endpoint,
    log: async (): Promise<LoggedRequest[]> =>
      (await (await fetch(`${endpoint}/__log`)).json()) as LoggedRequest[],
    close: (): Promise<void> =>
      new Promise((r) => {
        child.once('exit', () => r());
        child.kill();
      }),
  };
}
