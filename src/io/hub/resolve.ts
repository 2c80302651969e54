// One resolver from "a model as the user wrote it" to a local path, for every place a model is
// taken (CLI flags, run configs, the library API). A path that exists is used as it is; otherwise
// a Hugging Face repo id is looked up in the Hugging Face cache and downloaded when missing:
//   Qwen/Qwen2.5-Coder-0.5B-Instruct            the model directory (config, tokenizer, safetensors)
//   Qwen/Qwen2.5-Coder-0.5B-Instruct@v1.0       at a branch, tag or commit (also opts.revision)
//   Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
//                                              one GGUF file of a repository (@rev after the name)
//   hf://Qwen/Qwen2.5-Coder-0.5B-Instruct       the same, never taken for a local path
// The resolver is synchronous because model constructors are (they check and hash the path before
// loading): a cached revision costs a few stat calls; a download runs in a child process
// (fetch-child.ts) that shows progress on stderr, so the caller blocks only while it downloads.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ConfigError,
  FormatError,
  NetworkError,
  NotFoundError,
  Rl4qeError,
  UnsupportedError,
} from '../../util/errors.js';
import { cachedCommit, isRepoId, snapshotDir } from './cache.js';
import { hfEnv } from './env.js';

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

/** What a model directory needs from its repository: config, tokenizer, safetensors weights. */
export const DEFAULT_INCLUDE = [
  'config.json',
  ...HF_SIDE_FILES,
  '*.safetensors',
  'model.safetensors.index.json',
];

export interface HubModelRef {
  repo: string;
  revision?: string;
  /** A single file of the repository (a GGUF); absent: the model directory. */
  file?: string;
}

/**
 * Reads a Hub model reference; undefined when `spec` does not look like one (a path). Does not
 * look at the file system: callers check for a local path first.
 */
export function parseHubModelRef(spec: string): HubModelRef | undefined {
  const forced = spec.startsWith('hf://');
  const s = forced ? spec.slice(5) : spec;
  const bad = (why: string): never => {
    throw new ConfigError(`invalid Hugging Face model reference: ${why}`, {
      where: spec,
      expected: 'hf://namespace/name[@revision][/file.gguf]',
    });
  };
  if (!forced && (s.startsWith('.') || s.startsWith('/') || s.startsWith('~') || s.includes('\\')))
    return undefined;
  const parts = s.split('/');
  if (parts.length < 2) return forced ? bad('no namespace/name') : undefined;
  const owner = parts[0]!;
  let name = parts[1]!;
  let revision: string | undefined;
  let rest = parts.slice(2);
  const at = name.indexOf('@');
  if (at >= 0) {
    revision = name.slice(at + 1);
    name = name.slice(0, at);
    // "org/name@rev/file.gguf": one revision segment, then the file; otherwise the revision is the
    // rest (a branch like refs/pr/1 has slashes).
    if (!(rest.length > 0 && rest[rest.length - 1]!.toLowerCase().endsWith('.gguf'))) {
      revision = [revision, ...rest].join('/');
      rest = [];
    }
    if (revision === '') return forced ? bad('empty revision') : undefined;
  }
  const repo = `${owner}/${name}`;
  if (!isRepoId(repo)) return forced ? bad(`"${repo}" is not a repository id`) : undefined;
  if (rest.length > 0) {
    const file = rest.join('/');
    if (
      !file.toLowerCase().endsWith('.gguf') ||
      rest.some((p) => p === '' || p === '..' || p === '.')
    )
      return forced ? bad('a file inside a repository must be a .gguf') : undefined;
    return { repo, ...(revision !== undefined ? { revision } : {}), file };
  }
  return { repo, ...(revision !== undefined ? { revision } : {}) };
}

export interface ResolveModelOptions {
  /** Branch, tag or commit (the CLI's --revision); conflicts with a different `repo@rev`. */
  revision?: string;
  /** Default $HF_HUB_CACHE. */
  cacheDir?: string;
  /** Where the spec came from, for errors (e.g. "--refiner-model", "refiner.model"). */
  where?: string;
}

/** What a Hub reference resolved to. */
export interface ResolvedModel {
  /** The local path: a snapshot directory or a file in it. */
  path: string;
  repo: string;
  revision: string;
  commit: string;
}

/** Which files a model reference needs, as include patterns. */
export function includeFor(ref: HubModelRef): string[] {
  return ref.file ? [ref.file] : DEFAULT_INCLUDE;
}

/**
 * Whether a snapshot directory holds a loadable model: config.json and every weight file (each
 * shard the index names, or model.safetensors). Missing files are listed.
 */
export function modelDirMissing(dir: string): string[] {
  const has = (f: string): boolean => {
    try {
      return fs.statSync(path.join(dir, f)).isFile();
    } catch {
      return false;
    }
  };
  const missing: string[] = [];
  if (!has('config.json')) missing.push('config.json');
  const index = path.join(dir, 'model.safetensors.index.json');
  if (has('model.safetensors.index.json')) {
    let shards: string[] = [];
    try {
      const j = JSON.parse(fs.readFileSync(index, 'utf8')) as {
        weight_map?: Record<string, string>;
      };
      shards = [...new Set(Object.values(j.weight_map ?? {}))];
    } catch (e) {
      throw new FormatError('model.safetensors.index.json is not valid JSON', {
        where: index,
        cause: e,
      });
    }
    for (const s of shards) if (!has(s)) missing.push(s);
  } else if (!has('model.safetensors')) {
    let any = false;
    try {
      any = fs.readdirSync(dir).some((f) => f.endsWith('.safetensors'));
    } catch {
      any = false;
    }
    if (!any) missing.push('model.safetensors');
  }
  return missing;
}

/** The cached local path of a Hub reference, when complete (no network). */
export function cachedModelPath(
  ref: HubModelRef,
  revision: string,
  cacheDir: string,
): ResolvedModel | undefined {
  const r = { repo: ref.repo, type: 'model' as const };
  const commit = cachedCommit(r, revision, cacheDir);
  if (!commit) return undefined;
  const dir = snapshotDir(r, commit, cacheDir);
  if (ref.file) {
    const p = path.join(dir, ...ref.file.split('/'));
    try {
      if (fs.statSync(p).isFile()) return { path: p, repo: ref.repo, revision, commit };
    } catch {
      return undefined;
    }
    return undefined;
  }
  return fs.existsSync(dir) && modelDirMissing(dir).length === 0
    ? { path: dir, repo: ref.repo, revision, commit }
    : undefined;
}

function revisionOf(ref: HubModelRef, opts: ResolveModelOptions, spec: string): string {
  if (opts.revision !== undefined && ref.revision !== undefined && opts.revision !== ref.revision) {
    throw new ConfigError('two revisions for one model', {
      where: opts.where ?? spec,
      expected: 'one of repo@revision and --revision',
      found: `@${ref.revision} and ${opts.revision}`,
    });
  }
  return opts.revision ?? ref.revision ?? 'main';
}

/** An error's own message: its first line without the `where: ` prefix. */
export function rawMessage(e: Rl4qeError): string {
  const first = e.message.split('\n')[0] ?? e.message;
  return e.where !== undefined && first.startsWith(`${e.where}: `)
    ? first.slice(e.where.length + 2)
    : first;
}

/** The compiled child next to this module (dist/io/hub/fetch-child.js). */
function childScript(): string {
  return fileURLToPath(new URL('./fetch-child.js', import.meta.url));
}

export interface ChildRequest {
  repo: string;
  revision: string;
  include: string[];
  cacheDir?: string;
}

export type ChildReply =
  | { ok: true; dir: string; commit: string }
  | {
      ok: false;
      error: {
        cls: string;
        message: string;
        where?: string;
        expected?: string;
        found?: string;
        hint?: string;
      };
    };

const ERROR_CLASSES: Record<
  string,
  new (m: string, d: ConstructorParameters<typeof Rl4qeError>[1]) => Rl4qeError
> = {
  NetworkError,
  HubUnreachableError: NetworkError,
  NotFoundError,
  ConfigError,
  FormatError,
  UnsupportedError,
};

/** Runs the download in a child process (the resolver is synchronous) and returns its reply. */
function downloadInChild(req: ChildRequest, where: string): { dir: string; commit: string } {
  const r = spawnSync(process.execPath, [childScript(), JSON.stringify(req)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    maxBuffer: 1 << 24,
  });
  const line = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  let reply: ChildReply | undefined;
  try {
    reply = JSON.parse(line) as ChildReply;
  } catch {
    reply = undefined;
  }
  if (!reply) {
    throw new NetworkError(`downloading ${req.repo}@${req.revision} failed`, {
      where,
      found: r.error
        ? String(r.error)
        : `the download process ended with status ${r.status ?? r.signal}`,
      hint: `run \`rl4qe pull ${req.repo} --revision ${req.revision}\` to see the full error`,
    });
  }
  if (reply.ok) return { dir: reply.dir, commit: reply.commit };
  const Cls = ERROR_CLASSES[reply.error.cls] ?? NetworkError;
  const { message, ...d } = reply.error;
  throw new Cls(message, {
    ...(d.where !== undefined ? { where: d.where } : {}),
    ...(d.expected !== undefined ? { expected: d.expected } : {}),
    ...(d.found !== undefined ? { found: d.found } : {}),
    ...(d.hint !== undefined ? { hint: d.hint } : {}),
  });
}

/**
 * A Hub reference → its local path: the cached snapshot when complete, else a download into the
 * Hugging Face cache (HF_ENDPOINT, the login token, HF_HUB_OFFLINE honoured). Errors name the
 * repository, the cache folder and what to do.
 */
export function resolveHubModel(
  ref: HubModelRef,
  opts: ResolveModelOptions = {},
  spec = ref.repo,
): ResolvedModel {
  const revision = revisionOf(ref, opts, spec);
  const env = hfEnv();
  const cacheDir = opts.cacheDir ?? env.hubCache;
  const cached = cachedModelPath(ref, revision, cacheDir);
  if (cached) return cached;
  const what = `${ref.repo}@${revision}${ref.file ? `/${ref.file}` : ''}`;
  if (env.offline) {
    throw new NetworkError(`${what} is not in the Hugging Face cache and HF_HUB_OFFLINE is set`, {
      where: opts.where ?? spec,
      expected: `a complete snapshot under ${path.join(cacheDir, `models--${ref.repo.replace('/', '--')}`)}`,
      hint: `download it once on a connected machine (rl4qe pull ${ref.repo}${revision !== 'main' ? ` --revision ${revision}` : ''}, or Python's hf download), or give a local path`,
    });
  }
  const got = downloadInChild(
    {
      repo: ref.repo,
      revision,
      include: includeFor(ref),
      ...(opts.cacheDir ? { cacheDir: opts.cacheDir } : {}),
    },
    opts.where ?? spec,
  );
  const p = ref.file ? path.join(got.dir, ...ref.file.split('/')) : got.dir;
  if (!ref.file) {
    const missing = modelDirMissing(got.dir);
    if (missing.length > 0) {
      throw new FormatError(`${what} is not a complete Hugging Face model directory`, {
        where: got.dir,
        expected:
          'config.json and safetensors weights (every shard of model.safetensors.index.json)',
        found: `missing ${missing.join(', ')}`,
        hint: 'a GGUF repository? name the file: REPO/FILE.gguf',
      });
    }
  } else if (!fs.existsSync(p)) {
    throw new NotFoundError(`${ref.file} is not in ${ref.repo}@${revision}`, { where: got.dir });
  }
  return { path: p, repo: ref.repo, revision, commit: got.commit };
}

/**
 * The one model resolver: a local path that exists is returned resolved; a Hugging Face repo id
 * (see the file comment) is found in or downloaded into the Hugging Face cache and its snapshot
 * path returned. Anything else is returned resolved, unchanged, for the caller's own "not found".
 */
export function resolveModelPath(spec: string, opts: ResolveModelOptions = {}): string {
  if (!spec.startsWith('hf://') && fs.existsSync(spec)) {
    if (opts.revision !== undefined) {
      throw new ConfigError('a revision was given for a local path', {
        where: opts.where ?? spec,
        found: `${spec} exists here, revision ${opts.revision}`,
        hint:
          parseHubModelRef(spec) !== undefined
            ? `to use the Hub repository instead, write hf://${spec}`
            : 'a revision picks a branch, tag or commit of a Hub repo id; drop it for a path',
      });
    }
    return path.resolve(spec);
  }
  const ref = parseHubModelRef(spec);
  if (!ref) return path.resolve(spec);
  try {
    return resolveHubModel(ref, opts, spec).path;
  } catch (e) {
    // Not written as hf://: it may have been meant as a path; say that none exists.
    if (spec.startsWith('hf://') || !(e instanceof Rl4qeError)) throw e;
    const first = rawMessage(e);
    if (e instanceof NotFoundError) {
      throw new NotFoundError(`${spec} is neither a local path nor a model on the Hub`, {
        where: opts.where ?? spec,
        expected: 'a GGUF file, a Hugging Face model directory, or a Hub repo id (namespace/name)',
        found: `no such path (${path.resolve(spec)}); the Hub: ${first}`,
        ...(e.hint !== undefined ? { hint: e.hint } : {}),
        cause: e,
      });
    }
    if (!(e instanceof NetworkError)) throw e;
    const Cls = e.constructor as new (
      m: string,
      d: ConstructorParameters<typeof Rl4qeError>[1],
    ) => Rl4qeError;
    throw new Cls(`no local path ${path.resolve(spec)}, and as a Hub repo id: ${first}`, {
      where: e.where ?? opts.where ?? spec,
      ...(e.expected !== undefined ? { expected: e.expected } : {}),
      ...(e.found !== undefined ? { found: e.found } : {}),
      ...(e.hint !== undefined ? { hint: e.hint } : {}),
      cause: e,
    });
  }
}
