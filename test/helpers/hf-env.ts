// One isolated Hugging Face home per test for the Hub suites: every HF_* variable a download or
// the cache layout reads is cleared before each test and restored after it, and HF_HOME points at
// a fresh temporary folder (removed after), so a test neither reads the developer's real cache or
// token nor leaves anything behind.
import { afterEach, beforeEach } from 'node:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The variables the Hub client and the cache layout read (huggingface_hub's names). */
export const HF_VARS = [
  'HF_HOME',
  'HF_HUB_CACHE',
  'HUGGINGFACE_HUB_CACHE',
  'HF_ENDPOINT',
  'HF_HUB_OFFLINE',
  'HF_TOKEN',
  'HUGGING_FACE_HUB_TOKEN',
  'HF_TOKEN_PATH',
  'XDG_CACHE_HOME',
] as const;

/** Registers the per-test isolation; `home` is the current test's HF_HOME. */
export function isolatedHfHome(prefix: string): { readonly home: string } {
  const state = { home: '' };
  let saved: Record<string, string | undefined> = {};
  beforeEach(() => {
    saved = Object.fromEntries(HF_VARS.map((k) => [k, process.env[k]]));
    for (const k of HF_VARS) delete process.env[k];
    state.home = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    process.env.HF_HOME = state.home;
  });
  afterEach(() => {
    for (const k of HF_VARS) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
    fs.rmSync(state.home, { recursive: true, force: true });
  });
  return state;
}
