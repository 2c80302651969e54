// The generator cache: content-addressed on disk by (backend, model, effective sampling
// parameters, full prompt). A re-run, a resumed run or a reward ablation never calls the
// generator again for a request it has answered.
//
// Store: SQLite through better-sqlite3 (synchronous, no server, one file). WAL mode lets several
// processes read while one writes; busy_timeout makes concurrent writers wait instead of failing;
// every insert is one transaction, so a crash mid-write leaves either the whole row or nothing.
//
// Only completions are cached. Failures are not: almost all are transient (rate limits,
// timeouts, resets, budget) and caching them would replay an outage into the next run; the
// deterministic ones (auth, unknown model) fail fast anyway and cost nothing to repeat.
//
// A sampled request without a seed (temperature > 0, or an HTTP backend's unknown default) is
// never answered from the cache nor stored: each one is a fresh sample, as from the backend
// itself. Seeded and greedy requests are reproducible and cached; the seed is part of the key.
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type DatabaseCtor from 'better-sqlite3';
import { createRequire } from 'node:module';
import { FormatError } from '../util/errors.js';
import { createLogger } from '../util/log.js';
import { cachePaths } from '../util/paths.js';
import type {
  Completion,
  FinishReason,
  GeneratorRequestOptions,
  GenerationRequest,
  GenerationResult,
  Generator,
  GeneratorIdentity,
} from './types.js';
import { chatOf, isUnseededSample } from './types.js';

const log = createLogger('generators.cache');
const require = createRequire(import.meta.url);

/** Bumped when the key derivation changes, so old entries are not misread. */
const KEY_VERSION = 1;

/** JSON with sorted keys and without undefined: equal values give equal strings. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v))
    return `[${v.map((x) => (x === undefined ? 'null' : canonicalJson(x))).join(',')}]`;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
}

/** What the key covers: everything that changes the answer, nothing else (not the request id). */
export function cacheKeyMaterial(
  identity: GeneratorIdentity,
  r: GenerationRequest,
): Record<string, unknown> {
  const params = { ...identity.params, ...r.params };
  if (params.stop?.length === 0) delete params.stop;
  return {
    v: KEY_VERSION,
    backend: identity.backend,
    model: identity.model,
    params,
    ...(r.messages !== undefined ? { messages: chatOf(r) } : { prompt: r.prompt }),
  };
}

export function cacheKey(identity: GeneratorIdentity, r: GenerationRequest): string {
  return createHash('sha256')
    .update(canonicalJson(cacheKeyMaterial(identity, r)))
    .digest('hex');
}

export interface CachedAnswer {
  text: string;
  finishReason: FinishReason;
  promptTokens: number;
  completionTokens: number;
  /** What the original call cost. */
  costUsd: number;
}

export interface CacheStats {
  hits: number;
  misses: number;
  writes: number;
  /** Writes that failed (disk full, lock timeout): logged, never fatal. */
  writeErrors: number;
}

interface Row {
  text: string;
  finish_reason: string;
  prompt_tokens: number;
  completion_tokens: number;
  cost_usd: number;
}

export interface GenerationCacheOptions {
  /** SQLite file. Default: cachePaths.generatorCache()/cache.sqlite. */
  file?: string;
  /** How long a writer waits for another process's lock. Default 30 s. */
  busyTimeoutMs?: number;
}

export class GenerationCache {
  readonly file: string;
  private readonly db: DatabaseCtor.Database;
  private readonly getStmt: DatabaseCtor.Statement<[string], Row>;
  private readonly putStmt: DatabaseCtor.Statement<unknown[]>;
  private readonly counts: CacheStats = { hits: 0, misses: 0, writes: 0, writeErrors: 0 };

  constructor(opts: GenerationCacheOptions = {}) {
    this.file = opts.file ?? path.join(cachePaths.generatorCache(), 'cache.sqlite');
    mkdirSync(path.dirname(this.file), { recursive: true });
    // Loaded here rather than at module load so importing src/generators never needs the addon.
    const Database = require('better-sqlite3') as typeof DatabaseCtor;
    try {
      this.db = new Database(this.file, { timeout: opts.busyTimeoutMs ?? 30_000 });
      this.db.pragma('journal_mode = WAL');
      // NORMAL in WAL mode: a process crash never loses a committed row; only power loss can lose
      // the last few, and never corrupts the file.
      this.db.pragma('synchronous = NORMAL');
      this.db.exec(`CREATE TABLE IF NOT EXISTS completions (
        key TEXT PRIMARY KEY,
        backend TEXT NOT NULL,
        model TEXT NOT NULL,
        request TEXT NOT NULL,
        text TEXT NOT NULL,
        finish_reason TEXT NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cost_usd REAL NOT NULL,
        created_at INTEGER NOT NULL
      ) WITHOUT ROWID`);
    } catch (err) {
      throw new FormatError('cannot open the generator cache', {
        where: this.file,
        found: err instanceof Error ? err.message : String(err),
        hint: 'if the file is corrupt, move it away (answers will be regenerated); set RL4QE_HOME for another location',
        cause: err,
      });
    }
    this.getStmt = this.db.prepare<[string], Row>(
      'SELECT text, finish_reason, prompt_tokens, completion_tokens, cost_usd FROM completions WHERE key = ?',
    );
    // First writer wins: an answer, once given, is the answer (two processes racing on one key
    // keep the same row, so every reader sees one consistent value).
    this.putStmt = this.db.prepare(
      `INSERT OR IGNORE INTO completions
       (key, backend, model, request, text, finish_reason, prompt_tokens, completion_tokens, cost_usd, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
  }

  get(key: string): CachedAnswer | undefined {
    const row = this.getStmt.get(key);
    if (!row) {
      this.counts.misses++;
      return undefined;
    }
    this.counts.hits++;
    return {
      text: row.text,
      finishReason: row.finish_reason as FinishReason,
      promptTokens: row.prompt_tokens,
      completionTokens: row.completion_tokens,
      costUsd: row.cost_usd,
    };
  }

  /** Looks up without counting a hit or miss (dry runs). */
  has(key: string): boolean {
    return this.getStmt.get(key) !== undefined;
  }

  put(key: string, identity: GeneratorIdentity, request: GenerationRequest, c: Completion): void {
    try {
      this.putStmt.run(
        key,
        identity.backend,
        identity.model,
        canonicalJson(cacheKeyMaterial(identity, request)),
        c.text,
        c.finishReason,
        c.usage.promptTokens,
        c.usage.completionTokens,
        c.costUsd,
        Date.now(),
      );
      this.counts.writes++;
    } catch (err) {
      // A cache that cannot write must not stop a training run: the answer is still returned.
      this.counts.writeErrors++;
      log.warn('cache write failed; continuing without caching this answer', {
        file: this.file,
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }

  /** Rows stored (across all processes). */
  size(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM completions').get() as { n: number }).n;
  }

  stats(): CacheStats {
    return { ...this.counts };
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

/**
 * Wraps any Generator with a GenerationCache: hits come back with cached: true, costUsd 0 and
 * attempts 0; misses go to the generator (duplicates within one batch only once) and completions
 * are stored.
 */
export class CachedGenerator implements Generator {
  readonly identity: GeneratorIdentity;

  constructor(
    readonly inner: Generator,
    readonly cache: GenerationCache,
    private readonly opts: { closeCacheOnDispose?: boolean } = {},
  ) {
    this.identity = inner.identity;
  }

  key(r: GenerationRequest): string {
    return cacheKey(this.identity, r);
  }

  async generate(
    requests: readonly GenerationRequest[],
    opts: GeneratorRequestOptions = {},
  ): Promise<GenerationResult[]> {
    const out: (GenerationResult | undefined)[] = new Array(requests.length);
    const missByKey = new Map<string, number[]>();
    const keys: (string | undefined)[] = [];
    // Unseeded samples pass straight through: no lookup, no write, no sharing with a duplicate.
    const fresh: number[] = [];
    requests.forEach((r, i) => {
      if (isUnseededSample(this.identity, r)) {
        keys.push(undefined);
        fresh.push(i);
        return;
      }
      const t0 = performance.now();
      const k = this.key(r);
      keys.push(k);
      const seen = missByKey.get(k);
      if (seen) {
        seen.push(i);
        return;
      }
      const hit = this.cache.get(k);
      if (hit) {
        out[i] = {
          ok: true,
          id: r.id,
          text: hit.text,
          finishReason: hit.finishReason,
          usage: { promptTokens: hit.promptTokens, completionTokens: hit.completionTokens },
          latencyMs: performance.now() - t0,
          costUsd: 0,
          cached: true,
          attempts: 0,
        };
      } else missByKey.set(k, [i]);
    });
    const firsts = [...missByKey.values()].flatMap((idx) => idx.slice(0, 1));
    const send = [...firsts, ...fresh];
    if (send.length > 0) {
      const answers = await this.inner.generate(
        send.map((i) => requests[i] as GenerationRequest),
        opts,
      );
      answers.forEach((res, j) => {
        const i = send[j] as number;
        out[i] = res;
        const k = keys[i];
        if (k === undefined) return;
        if (res.ok) this.cache.put(k, this.identity, requests[i] as GenerationRequest, res);
        for (const dup of (missByKey.get(k) ?? []).slice(1)) {
          const d = requests[dup] as GenerationRequest;
          out[dup] = res.ok
            ? { ...res, id: d.id, cached: true, costUsd: 0, attempts: 0 }
            : { ...res, id: d.id };
        }
      });
    }
    return out as GenerationResult[];
  }

  async dispose(): Promise<void> {
    await this.inner.dispose();
    if (this.opts.closeCacheOnDispose) this.cache.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}
