// The serve app's middleware, in the order app.ts installs it: access log + request id, the
// bearer token, admission (draining, the concurrency limit), the body limit, and the request
// deadline — the one timeout of a request: an AbortSignal that refine and generate both get.
import { timingSafeEqual } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { httpError, sendError, type HttpError } from './errors.js';

export type ServeLog = (entry: Record<string, unknown>) => void;

/** One JSON object per line on stderr: the default structured log. */
export const jsonStderrLog: ServeLog = (e) => {
  process.stderr.write(
    JSON.stringify({ t: new Date().toISOString(), scope: 'serve', ...e }) + '\n',
  );
};

/** The request's deadline: aborts refine and generate together when the time is up. */
export interface Deadline {
  signal: AbortSignal;
  ms: number;
  timedOut(): boolean;
}

/** Per-request values the middleware and the handlers share. */
export type ServeEnv = {
  Variables: { requestId: string; logExtra: Record<string, unknown>; deadline: Deadline };
};
export type ServeContext = Context<ServeEnv>;

export function accessLog(log: ServeLog): MiddlewareHandler<ServeEnv> {
  let seq = 0;
  return async (c, next) => {
    const t0 = performance.now();
    const id = `req-${Date.now().toString(36)}-${(seq++).toString(36)}`;
    c.set('requestId', id);
    c.header('x-request-id', id);
    await next();
    log({
      level: c.res.status >= 500 ? 'error' : c.res.status >= 400 ? 'warn' : 'info',
      msg: 'request',
      id,
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      ms: Math.round(performance.now() - t0),
      ...(c.get('logExtra') ?? {}),
    });
  };
}

function tokenMatches(header: string | undefined, token: string): boolean {
  if (!header?.startsWith('Bearer ')) return false;
  const a = Buffer.from(header.slice(7));
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function bearerAuth(token: string | undefined): MiddlewareHandler<ServeEnv> {
  return async (c, next) => {
    if (token !== undefined && !tokenMatches(c.req.header('authorization'), token)) {
      c.header('www-authenticate', 'Bearer');
      return sendError(
        c,
        httpError(401, 'missing or wrong bearer token', 'authentication_error', 'unauthorized'),
      );
    }
    await next();
  };
}

/** Counts POSTs in flight; refuses new ones while draining (503) or beyond the limit (429). */
export class Admission {
  active = 0;
  draining = false;
  constructor(private readonly maxConcurrent: number) {}

  middleware(): MiddlewareHandler<ServeEnv> {
    return async (c, next) => {
      if (c.req.method !== 'POST') return next();
      if (this.draining) {
        c.header('connection', 'close');
        return sendError(c, httpError(503, 'server is shutting down', 'server_error', 'draining'));
      }
      if (this.active >= this.maxConcurrent) {
        c.header('retry-after', '1');
        return sendError(
          c,
          httpError(
            429,
            `server busy: ${this.active} requests in flight (limit ${this.maxConcurrent})`,
            'rate_limit_error',
            'busy',
          ),
        );
      }
      this.active++;
      try {
        await next();
      } finally {
        this.active--;
      }
    };
  }
}

export function limitBody(maxBytes: number): MiddlewareHandler<ServeEnv> {
  return bodyLimit({
    maxSize: maxBytes,
    onError: (c) =>
      sendError(
        c,
        httpError(
          413,
          `request body larger than ${maxBytes} bytes`,
          'invalid_request_error',
          'body_too_large',
        ),
      ),
  });
}

export function deadline(ms: number): MiddlewareHandler<ServeEnv> {
  return async (c, next) => {
    const signal = AbortSignal.timeout(ms);
    c.set('deadline', { signal, ms, timedOut: () => signal.aborted });
    await next();
  };
}

/** The parsed JSON body, or a 400 when it is not JSON. */
export async function readJson(c: ServeContext): Promise<{ body: unknown } | HttpError> {
  try {
    return { body: (await c.req.json()) as unknown };
  } catch {
    return httpError(
      400,
      'request body is not valid JSON',
      'invalid_request_error',
      'invalid_json',
    );
  }
}
