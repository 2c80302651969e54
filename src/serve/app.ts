// The HTTP surface of `rl4qe serve`, as a Hono app (no sockets here: server.ts binds it).
//   POST /v1/chat/completions  OpenAI-compatible: refine the last user message, generate, answer
//   POST /v1/refine            refinement only
//   GET  /health, GET /v1/models
// Hono: small (no dependencies), maintained, Web-standard Request/Response, typed middleware;
// errors are mapped to HTTP in one place (errorBody / statusFor below).
import { timingSafeEqual } from 'node:crypto';
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { z } from 'zod';
import type { FailureKind, GenerationFailure, Generator } from '../generators/index.js';
import type { Refiner, RefineResult } from './refiner.js';

/** Per-request values the middleware and the handlers share. */
type Env = { Variables: { requestId: string; logExtra: Record<string, unknown> } };

export type ServeLog = (entry: Record<string, unknown>) => void;

/** One JSON object per line on stderr: the default structured log. */
export const jsonStderrLog: ServeLog = (e) => {
  process.stderr.write(
    JSON.stringify({ t: new Date().toISOString(), scope: 'serve', ...e }) + '\n',
  );
};

export interface ServeAppOptions {
  refiner: Refiner;
  generator: Generator;
  /** The model id clients send and /v1/models lists. Default 'rl4qe'. */
  modelId?: string;
  /** Requests handled at once; more get 429. Default 16. */
  maxConcurrent?: number;
  /** Whole-request deadline (refine + generate). Default 120 s. */
  requestTimeoutMs?: number;
  /** Maximum request body. Default 1 MiB. */
  maxBodyBytes?: number;
  /** When set, /v1/* needs `Authorization: Bearer <token>`. */
  bearerToken?: string;
  log?: ServeLog;
}

const messageSchema = z.object({
  role: z.enum(['system', 'user', 'assistant']),
  content: z.string(),
});

// Unknown fields (n, user, presence_penalty...) are accepted and ignored, as OpenAI clients send them.
const chatBodySchema = z.object({
  model: z.string().optional(),
  messages: z.array(messageSchema).min(1),
  temperature: z.number().min(0).max(2).optional(),
  top_p: z.number().gt(0).max(1).optional(),
  max_tokens: z.number().int().positive().optional(),
  max_completion_tokens: z.number().int().positive().optional(),
  seed: z.number().int().optional(),
  stop: z
    .union([z.string(), z.array(z.string()).max(16)])
    .nullable()
    .optional(),
  stream: z.literal(false).optional(),
  rl4qe: z.object({ refine: z.boolean().optional() }).strict().optional(),
});

const refineBodySchema = z.object({ query: z.string().min(1) }).strict();

const MAX_HEADER_CHARS = 4096;

/** The refinement as a header value: percent-encoded (headers cannot hold newlines), truncated. */
function headerValue(s: string): string {
  const enc = encodeURIComponent(s);
  return enc.length <= MAX_HEADER_CHARS
    ? enc
    : enc.slice(0, MAX_HEADER_CHARS).replace(/%[0-9A-F]?$/i, '');
}

function statusFor(kind: FailureKind): 400 | 402 | 404 | 429 | 502 | 503 | 504 {
  switch (kind) {
    case 'rate_limited':
      return 429;
    case 'timeout':
      return 504;
    case 'budget_exceeded':
      return 402;
    case 'aborted':
      return 503;
    case 'bad_request':
      return 400;
    default:
      return 502;
  }
}

function errorBody(
  message: string,
  type: string,
  code: string,
  extra: Record<string, unknown> = {},
) {
  return { error: { message, type, code, ...extra } };
}

function tokenMatches(header: string | undefined, token: string): boolean {
  if (!header?.startsWith('Bearer ')) return false;
  const a = Buffer.from(header.slice(7));
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

export interface ServeApp {
  app: Hono<Env>;
  /** Requests being handled now. */
  inFlight(): number;
  /** Stop taking new requests (503), for graceful shutdown. */
  drain(): void;
}

export function createServeApp(opts: ServeAppOptions): ServeApp {
  const modelId = opts.modelId ?? 'rl4qe';
  const maxConcurrent = opts.maxConcurrent ?? 16;
  const timeoutMs = opts.requestTimeoutMs ?? 120_000;
  const log = opts.log ?? jsonStderrLog;
  let active = 0;
  let draining = false;
  let seq = 0;
  const app = new Hono<Env>();

  // Access log + request id for every request.
  app.use('*', async (c, next) => {
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
  });

  app.get('/health', (c) =>
    draining
      ? c.json({ status: 'draining' }, 503)
      : c.json({
          status: 'ok',
          inFlight: active,
          refiner: opts.refiner.name,
          generator: opts.generator.identity,
        }),
  );

  app.use('/v1/*', async (c, next) => {
    if (
      opts.bearerToken !== undefined &&
      !tokenMatches(c.req.header('authorization'), opts.bearerToken)
    ) {
      c.header('www-authenticate', 'Bearer');
      return c.json(
        errorBody('missing or wrong bearer token', 'authentication_error', 'unauthorized'),
        401,
      );
    }
    await next();
  });

  app.get('/v1/models', (c) =>
    c.json({
      object: 'list',
      data: [{ id: modelId, object: 'model', created: 0, owned_by: 'rl4qe' }],
    }),
  );

  // Admission: concurrency limit and draining, before the body is read.
  app.use('/v1/*', async (c, next) => {
    if (c.req.method !== 'POST') return next();
    if (draining) {
      c.header('connection', 'close');
      return c.json(errorBody('server is shutting down', 'server_error', 'draining'), 503);
    }
    if (active >= maxConcurrent) {
      c.header('retry-after', '1');
      return c.json(
        errorBody(
          `server busy: ${active} requests in flight (limit ${maxConcurrent})`,
          'rate_limit_error',
          'busy',
        ),
        429,
      );
    }
    active++;
    try {
      await next();
    } finally {
      active--;
    }
  });

  app.use(
    '/v1/*',
    bodyLimit({
      maxSize: opts.maxBodyBytes ?? 1 << 20,
      onError: (c) =>
        c.json(
          errorBody(
            `request body larger than ${opts.maxBodyBytes ?? 1 << 20} bytes`,
            'invalid_request_error',
            'body_too_large',
          ),
          413,
        ),
    }),
  );

  /** Parses and validates a JSON body; a Response (400) when it is not valid. */
  async function readBody<T>(c: Context<Env>, schema: z.ZodType<T>): Promise<T | Response> {
    let raw: unknown;
    try {
      raw = await c.req.json();
    } catch {
      return c.json(
        errorBody('request body is not valid JSON', 'invalid_request_error', 'invalid_json'),
        400,
      );
    }
    const r = schema.safeParse(raw);
    if (r.success) return r.data;
    const issue = r.error.issues[0]!;
    const field = issue.path.join('.') || '(body)';
    return c.json(
      errorBody(`${field}: ${issue.message}`, 'invalid_request_error', 'invalid_field', {
        param: field,
      }),
      400,
    );
  }

  function deadline(): { signal: AbortSignal; done: () => void } {
    const ac = new AbortController();
    const t = setTimeout(() => ac.abort(new Error('request timeout')), timeoutMs);
    return { signal: ac.signal, done: () => clearTimeout(t) };
  }

  function failureResponse(
    c: Context<Env>,
    f: GenerationFailure,
    stage: string,
    timedOut: boolean,
  ): Response {
    const status = timedOut ? 504 : statusFor(f.kind);
    const message = timedOut
      ? `${stage}: no answer within ${timeoutMs} ms`
      : `${stage}: ${f.message}`;
    return c.json(
      errorBody(
        message,
        stage === 'refiner' ? 'refiner_error' : 'generator_error',
        timedOut ? 'timeout' : f.kind,
      ),
      status,
    );
  }

  app.post('/v1/refine', async (c) => {
    const body = await readBody(c, refineBodySchema);
    if (body instanceof Response) return body;
    const d = deadline();
    try {
      const r = await opts.refiner.refine(body.query, { signal: d.signal });
      c.set('logExtra', { refineMs: Math.round(r.metadata.latencyMs), refineOk: r.ok });
      if (!r.ok) return failureResponse(c, r.failure, 'refiner', d.signal.aborted);
      c.header('x-rl4qe-refined-query', headerValue(r.refined));
      return c.json({ original_query: body.query, refined_query: r.refined, metadata: r.metadata });
    } finally {
      d.done();
    }
  });

  app.post('/v1/chat/completions', async (c) => {
    const body = await readBody(c, chatBodySchema);
    if (body instanceof Response) return body;
    if (body.model !== undefined && body.model !== modelId)
      return c.json(
        errorBody(
          `model '${body.model}' not found; this server serves '${modelId}' (GET /v1/models)`,
          'invalid_request_error',
          'model_not_found',
          { param: 'model' },
        ),
        404,
      );
    let lastUser = -1;
    body.messages.forEach((m, i) => {
      if (m.role === 'user') lastUser = i;
    });
    if (lastUser < 0)
      return c.json(
        errorBody(
          'messages: no message with role user to refine',
          'invalid_request_error',
          'invalid_field',
          { param: 'messages' },
        ),
        400,
      );
    const original = body.messages[lastUser]!.content;
    const d = deadline();
    try {
      // 1. refine (unless the client opts out). A failed or empty refinement falls back to the
      //    original query: the service still answers, and says so in the field and the header.
      let refined = original;
      let refinement: {
        status: 'refined' | 'skipped' | 'empty' | 'failed';
        error?: string;
      } & Partial<RefineResult['metadata']>;
      if (body.rl4qe?.refine === false) refinement = { status: 'skipped' };
      else {
        const r = await opts.refiner.refine(original, { signal: d.signal });
        if (d.signal.aborted)
          return failureResponse(
            c,
            { ok: false, id: 'refine', kind: 'timeout', message: '', attempts: 0 },
            'refiner',
            true,
          );
        if (!r.ok) refinement = { status: 'failed', error: r.failure.message, ...r.metadata };
        else if (r.refined === '') refinement = { status: 'empty', ...r.metadata };
        else {
          refined = r.refined;
          refinement = { status: 'refined', ...r.metadata };
        }
      }
      // 2. generate from the refined query (it replaces the last user message, as in the paper).
      const messages = body.messages.map((m, i) =>
        i === lastUser ? { ...m, content: refined } : m,
      );
      const stop =
        body.stop === null || body.stop === undefined
          ? undefined
          : typeof body.stop === 'string'
            ? [body.stop]
            : body.stop;
      const [g] = await opts.generator.generate(
        [
          {
            id: c.get('requestId'),
            messages,
            params: {
              temperature: body.temperature,
              topP: body.top_p,
              maxTokens: body.max_tokens ?? body.max_completion_tokens,
              seed: body.seed,
              stop,
            },
          },
        ],
        { signal: d.signal },
      );
      c.set('logExtra', {
        refinement: refinement.status,
        refineMs: refinement.latencyMs !== undefined ? Math.round(refinement.latencyMs) : undefined,
        genOk: g!.ok,
        genKind: g!.ok ? undefined : g!.kind,
        genMs: g!.ok ? Math.round(g!.latencyMs) : undefined,
        cached: g!.ok ? g!.cached : undefined,
      });
      c.header('x-rl4qe-refinement-status', refinement.status);
      c.header('x-rl4qe-refined-query', headerValue(refined));
      if (!g!.ok) return failureResponse(c, g!, 'generator', d.signal.aborted);
      return c.json({
        id: `chatcmpl-${c.get('requestId')}`,
        object: 'chat.completion',
        created: Math.floor(Date.now() / 1000),
        model: modelId,
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: g!.text },
            finish_reason: g!.finishReason === 'other' ? 'stop' : g!.finishReason,
          },
        ],
        usage: {
          prompt_tokens: g!.usage.promptTokens,
          completion_tokens: g!.usage.completionTokens,
          total_tokens: g!.usage.promptTokens + g!.usage.completionTokens,
        },
        rl4qe: {
          original_query: original,
          refined_query: refined,
          refinement,
          generator_cached: g!.cached,
        },
      });
    } finally {
      d.done();
    }
  });

  app.notFound((c) =>
    c.json(
      errorBody(`no route ${c.req.method} ${c.req.path}`, 'invalid_request_error', 'not_found'),
      404,
    ),
  );
  app.onError((err, c) => {
    log({
      level: 'error',
      msg: 'unhandled',
      error: err instanceof Error ? err.message : String(err),
    });
    return c.json(errorBody('internal server error', 'server_error', 'internal'), 500);
  });

  return {
    app,
    inFlight: () => active,
    drain: () => {
      draining = true;
    },
  };
}
