// The Hugging Face environment, read the way Python's huggingface_hub reads it (constants.py and
// utils/_auth.py), so rl4qe, transformers and the `hf` CLI share one cache, one endpoint and one
// login:
//   HF_HOME          default $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface
//   HF_HUB_CACHE     default $HF_HOME/hub (legacy name HUGGINGFACE_HUB_CACHE also read)
//   HF_ENDPOINT      default https://huggingface.co
//   HF_HUB_OFFLINE   1/ON/YES/TRUE (any case): never touch the network, use the cache only
//   HF_TOKEN         else HUGGING_FACE_HUB_TOKEN, else the file `hf auth login` writes:
//                    $HF_TOKEN_PATH, default $HF_HOME/token
// Read on every call (not cached at import) so tests and long-running servers see changes.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

export interface HfEnv {
  /** $HF_HOME. */
  home: string;
  /** Where repositories are cached: models--org--name/{blobs,snapshots,refs}. */
  hubCache: string;
  /** The Hub's base URL, without a trailing slash. */
  endpoint: string;
  /** HF_HUB_OFFLINE is set: the cache is the only source. */
  offline: boolean;
  /** The access token, when one is configured. */
  token?: string;
  /** Where the token came from (for error messages; never the token itself). */
  tokenSource?: 'HF_TOKEN' | 'HUGGING_FACE_HUB_TOKEN' | string;
}

/** huggingface_hub's _is_true: "1", "ON", "YES", "TRUE" in any case. */
export function envIsTrue(v: string | undefined): boolean {
  return v !== undefined && ['1', 'ON', 'YES', 'TRUE'].includes(v.trim().toUpperCase());
}

function nonEmpty(v: string | undefined): string | undefined {
  const t = v?.trim();
  return t ? t : undefined;
}

function expandHome(p: string): string {
  return p === '~' ? os.homedir() : p.startsWith('~/') ? path.join(os.homedir(), p.slice(2)) : p;
}

export function hfHome(): string {
  const home = nonEmpty(process.env.HF_HOME);
  if (home) return path.resolve(expandHome(home));
  const xdg = nonEmpty(process.env.XDG_CACHE_HOME);
  return path.join(
    xdg ? path.resolve(expandHome(xdg)) : path.join(os.homedir(), '.cache'),
    'huggingface',
  );
}

export function hfHubCache(): string {
  const c = nonEmpty(process.env.HF_HUB_CACHE) ?? nonEmpty(process.env.HUGGINGFACE_HUB_CACHE);
  return c ? path.resolve(expandHome(c)) : path.join(hfHome(), 'hub');
}

/** The token file `hf auth login` writes (HF_TOKEN_PATH overrides, as in huggingface_hub). */
export function hfTokenPath(): string {
  const p = nonEmpty(process.env.HF_TOKEN_PATH);
  return p ? path.resolve(expandHome(p)) : path.join(hfHome(), 'token');
}

/** The token and its source: HF_TOKEN, HUGGING_FACE_HUB_TOKEN, then the saved login. */
export function hfToken(): { token: string; source: string } | undefined {
  for (const name of ['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN'] as const) {
    const v = nonEmpty(process.env[name]);
    if (v) return { token: v, source: name };
  }
  const file = hfTokenPath();
  try {
    const t = fs.readFileSync(file, 'utf8').trim();
    if (t) return { token: t, source: file };
  } catch {
    // no saved login
  }
  return undefined;
}

export function hfEnv(): HfEnv {
  const tok = hfToken();
  return {
    home: hfHome(),
    hubCache: hfHubCache(),
    endpoint: (nonEmpty(process.env.HF_ENDPOINT) ?? DEFAULT_ENDPOINT).replace(/\/+$/, ''),
    offline: envIsTrue(process.env.HF_HUB_OFFLINE),
    ...(tok ? { token: tok.token, tokenSource: tok.source } : {}),
  };
}
