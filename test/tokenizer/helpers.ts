// Shared helpers of the tokenizer parity suites: fixture loading, DS-1000 and test-model lookup.
import { existsSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cachePaths } from '../../src/util/paths.js';

/** Repository root (this file runs from dist/test/tokenizer/). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'tokenizer');
export const REGENERATE =
  'regenerate with: /root/.cache/rl4qe/oracle/bin/python scripts/fixtures_tokenizer.py';

export interface ExtraCase {
  text: string;
  ids: number[];
  ids_no_special: number[];
  decoded_no_special: string;
  decoded: string;
  decoded_skip_special: string;
}

export interface ChatCase {
  messages: { role: string; content: string }[];
  add_generation_prompt: boolean;
  tools?: unknown[];
  text: string;
  ids: number[];
}

export interface Expected {
  len: number;
  special_tokens_map: Record<string, string>;
  special_ids: Record<string, number>;
  skeleton: Record<string, unknown> & {
    added_tokens: { id: number; content: string; special: boolean }[];
    model: Record<string, unknown>;
    vocab_size: number;
    vocab_sha256: string;
    merges_count?: number;
    merges_sha256?: string;
  };
  extra: ExtraCase[];
  ds1000: { count: number; full_every: number; hashes: string[]; full: Record<string, number[]> };
  chats: ChatCase[];
  partial_decodes: { ids: number[]; decoded: string }[];
  model_file?: string;
  ds1000_sha256?: string;
  oracle_class: string;
}

export function loadExpected(name: string): Expected {
  return JSON.parse(readFileSync(path.join(FIXTURES, `${name}.expected.json`), 'utf8')) as Expected;
}

/** The hash the fixture script keeps per DS-1000 prompt (sha256 of the comma-joined ids, 16 hex). */
export function idsHash(ids: readonly number[]): string {
  return createHash('sha256').update(ids.join(',')).digest('hex').slice(0, 16);
}

/** sha256 of a JSON list written like Python's json.dumps(ensure_ascii=False, separators=(',',':')). */
export function listHash(items: unknown[]): string {
  return createHash('sha256').update(JSON.stringify(items), 'utf8').digest('hex');
}

/** DS-1000 prompts: $RL4QE_DATA_DIR, else the repository's data/, else shared/data upwards. */
export function loadDs1000Prompts(expectedSha256?: string): string[] {
  const tried: string[] = [];
  const candidates: string[] = [];
  if (process.env.RL4QE_DATA_DIR) candidates.push(path.resolve(process.env.RL4QE_DATA_DIR));
  candidates.push(path.join(REPO_ROOT, 'data'));
  for (let dir = REPO_ROOT; ; dir = path.dirname(dir)) {
    candidates.push(path.join(dir, 'shared', 'data'));
    if (path.dirname(dir) === dir) break;
  }
  for (const dir of candidates) {
    const file = path.join(dir, 'ds1000.jsonl.gz');
    tried.push(file);
    if (!existsSync(file)) continue;
    const gz = readFileSync(file);
    if (expectedSha256 !== undefined) {
      const sha = createHash('sha256').update(gz).digest('hex');
      if (sha !== expectedSha256) {
        throw new Error(`${file}: sha256 ${sha}, fixture was made from ${expectedSha256}`);
      }
    }
    return gunzipSync(gz)
      .toString('utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => (JSON.parse(l) as { prompt: string }).prompt);
  }
  throw new Error(
    `DS-1000 not found (tried ${tried.join(', ')}); set RL4QE_DATA_DIR to the folder holding ds1000.jsonl.gz`,
  );
}

/** Path of an offline test model; a clear failure (never a skip) when it is missing. */
export function testModelPath(file: string): string {
  const p = path.join(cachePaths.testModels(), file);
  if (!existsSync(p)) {
    throw new Error(`test model ${p} is missing: run \`node scripts/fetch-test-models.mjs\``);
  }
  return p;
}
