// The fetch that rl4qe hands to @huggingface/hub (its `fetch` option). The library does the Hub's
// API calls and the cache layout; this adds what it leaves out:
// - the token, sent only to the endpoint's own origin (so the library's "must start with hf_"
//   check does not reject mirrors' tokens, and a redirect to a CDN never carries it);
// - retries with backoff for a reset connection or a 5xx answer;
// - a body that survives a dropped connection: it asks again with `Range: bytes=N-` and goes on
//   where the bytes stopped (the library would restart, or fail, a multi-GB download);
// - byte counts for progress;
// - errors that say which URL failed and what to do (offline: HF_HUB_OFFLINE, a mirror).
import { NetworkError } from '../../util/errors.js';

export interface HubFetchOptions {
  /** The Hub's base URL; the token goes only to its origin. */
  endpoint: string;
  token?: string;
  /** Where the token came from, for the 401 hint. */
  tokenSource?: string;
  /** Tries per request for transient failures (default 4). */
  attempts?: number;
  signal?: AbortSignal;
  /** Body bytes as they arrive (not for the library's 1-byte probes). */
  onBytes?: (n: number) => void;
  /** A dropped body is being resumed at `offset`. */
  onResume?: (offset: number) => void;
}

/** Connection errors that mean "no network / nothing there", not "try again". */
const OFFLINE_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
]);

export const OFFLINE_HINT =
  'no network? set HF_HUB_OFFLINE=1 to use only the Hugging Face cache (files downloaded before, ' +
  'by rl4qe or by Python), or HF_ENDPOINT to a reachable mirror';

/** A NetworkError that means the Hub could not be reached at all (callers fall back to the cache). */
export class HubUnreachableError extends NetworkError {}

function rootCause(e: unknown): { code?: string; message: string } {
  let cur: unknown = e;
  for (let i = 0; i < 5 && cur instanceof Error && cur.cause !== undefined; i++) cur = cur.cause;
  const code = (cur as { code?: unknown } | null)?.code;
  return {
    code: typeof code === 'string' ? code : undefined,
    message: cur instanceof Error ? cur.message : String(cur),
  };
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    });
  });

const backoff = (attempt: number): number => Math.min(2000, 100 * 2 ** attempt);

function urlOf(input: string | URL | Request): string {
  return typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
}

/** `bytes=a-b` / `bytes=a-` → [a, b | undefined]. */
function parseRange(h: string | null): [number, number | undefined] | undefined {
  const m = /^bytes=(\d+)-(\d*)$/.exec(h ?? '');
  return m ? [Number(m[1]), m[2] === '' ? undefined : Number(m[2])] : undefined;
}

export function hubFetch(opts: HubFetchOptions): typeof fetch {
  const attempts = Math.max(1, opts.attempts ?? 4);
  const origin = new URL(opts.endpoint).origin;

  const once = async (url: string, init: RequestInit, headers: Headers): Promise<Response> => {
    for (let attempt = 1; ; attempt++) {
      let res: Response;
      try {
        res = await fetch(url, { ...init, headers, signal: opts.signal ?? init.signal });
      } catch (e) {
        if (opts.signal?.aborted || init.signal?.aborted) throw e;
        const { code, message } = rootCause(e);
        if (code !== undefined && OFFLINE_CODES.has(code)) {
          throw new HubUnreachableError('cannot reach the Hugging Face Hub', {
            where: url,
            found: `${code} ${message}`,
            hint: OFFLINE_HINT,
            cause: e,
          });
        }
        if (attempt < attempts) {
          await sleep(backoff(attempt), opts.signal);
          continue;
        }
        throw new NetworkError(`connection to the Hub failed ${attempts} times`, {
          where: url,
          found: `${code ?? ''} ${message}`.trim(),
          hint: 'run the command again (downloads resume where they stopped)',
          cause: e,
        });
      }
      if (res.status >= 500 && attempt < attempts) {
        await res.body?.cancel().catch(() => undefined);
        await sleep(backoff(attempt), opts.signal);
        continue;
      }
      return res;
    }
  };

  return async (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const url = urlOf(input);
    const headers = new Headers(init.headers);
    headers.set('user-agent', 'rl4qe/0.1 (@huggingface/hub)');
    if (opts.token && new URL(url).origin === origin && !headers.has('authorization')) {
      headers.set('authorization', `Bearer ${opts.token}`);
    }
    const res = await once(url, init, headers);
    const method = (init.method ?? 'GET').toUpperCase();
    const range = parseRange(headers.get('range'));
    // The library's probes ask for one byte: nothing to resume or count.
    const probe = range !== undefined && range[1] !== undefined && range[1] - range[0] < 1;
    if (method !== 'GET' || !res.body || probe || !(res.status === 200 || res.status === 206)) {
      return res;
    }
    const start = res.status === 206 ? (range?.[0] ?? 0) : 0;
    const end = res.status === 206 ? range?.[1] : undefined;
    return new Response(
      resumableBody(res, { url, init, headers, start, end }, once, opts, attempts),
      {
        status: res.status,
        statusText: res.statusText,
        headers: res.headers,
      },
    );
  };
}

interface BodyRequest {
  url: string;
  init: RequestInit;
  headers: Headers;
  start: number;
  end: number | undefined;
}

function resumableBody(
  first: Response,
  req: BodyRequest,
  once: (url: string, init: RequestInit, headers: Headers) => Promise<Response>,
  opts: HubFetchOptions,
  attempts: number,
): ReadableStream<Uint8Array> {
  let reader = first.body!.getReader();
  let got = 0;
  let resumes = 0;
  const dropped = (e: unknown, why: string): NetworkError =>
    new NetworkError(`connection dropped while downloading (${why})`, {
      where: req.url,
      found: `${req.start + got} bytes received`,
      hint: 'run the command again: the partial file is kept and resumed',
      cause: e,
    });
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (;;) {
        try {
          const { done, value } = await reader.read();
          if (done) {
            controller.close();
            return;
          }
          got += value.length;
          opts.onBytes?.(value.length);
          controller.enqueue(value);
          return;
        } catch (e) {
          if (opts.signal?.aborted) {
            controller.error(e);
            return;
          }
          if (resumes >= attempts - 1) {
            controller.error(dropped(e, `${attempts} tries`));
            return;
          }
          resumes++;
          const offset = req.start + got;
          opts.onResume?.(offset);
          await sleep(backoff(resumes), opts.signal);
          const h = new Headers(req.headers);
          h.set('range', `bytes=${offset}-${req.end ?? ''}`);
          let res: Response;
          try {
            res = await once(req.url, req.init, h);
          } catch (e2) {
            controller.error(e2);
            return;
          }
          const cr = /^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '');
          if (res.status !== 206 || !res.body || !cr || Number(cr[1]) !== offset) {
            await res.body?.cancel().catch(() => undefined);
            controller.error(
              dropped(e, `the server did not resume at byte ${offset}: HTTP ${res.status}`),
            );
            return;
          }
          reader = res.body.getReader();
        }
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}
