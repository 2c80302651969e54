// The HTTP surface of `rl4qe serve`, as a Hono app (no sockets here: server.ts binds it).
//   POST /v1/chat/completions  OpenAI-compatible: refine the last user message, generate, answer
//                              (chat-handler.ts; the request schema in chat-request.ts)
//   POST /v1/refine            refinement only (refine-handler.ts)
//   GET  /health, GET /v1/models
// Hono: small (no dependencies), maintained, Web-standard Request/Response, typed middleware
// (middleware.ts); errors take OpenAI's shape in one place (errors.ts).
import { Hono } from 'hono';
import type { Generator } from '../generators/index.js';
import { handleChat } from './chat-handler.js';
import { httpError, sendError } from './errors.js';
import {
  Admission,
  accessLog,
  bearerAuth,
  deadline,
  jsonStderrLog,
  limitBody,
  type ServeEnv,
  type ServeLog,
} from './middleware.js';
import { handleRefine } from './refine-handler.js';
import type { Refiner } from './refiner.js';

export { jsonStderrLog, type ServeLog } from './middleware.js';

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

/** Defaults of the options above, in one place. */
export const SERVE_APP_DEFAULTS = {
  modelId: 'rl4qe',
  maxConcurrent: 16,
  requestTimeoutMs: 120_000,
  maxBodyBytes: 1 << 20,
} as const;

export interface ServeApp {
  app: Hono<ServeEnv>;
  /** Requests being handled now. */
  inFlight(): number;
  /** Stop taking new requests (503), for graceful shutdown. */
  drain(): void;
}

export function createServeApp(opts: ServeAppOptions): ServeApp {
  const modelId = opts.modelId ?? SERVE_APP_DEFAULTS.modelId;
  const log = opts.log ?? jsonStderrLog;
  const admission = new Admission(opts.maxConcurrent ?? SERVE_APP_DEFAULTS.maxConcurrent);
  const app = new Hono<ServeEnv>();

  app.use('*', accessLog(log));
  app.get('/health', (c) =>
    admission.draining
      ? c.json({ status: 'draining' }, 503)
      : c.json({
          status: 'ok',
          inFlight: admission.active,
          refiner: opts.refiner.name,
          generator: opts.generator.identity,
        }),
  );
  app.use('/v1/*', bearerAuth(opts.bearerToken));
  app.get('/v1/models', (c) =>
    c.json({
      object: 'list',
      data: [{ id: modelId, object: 'model', created: 0, owned_by: 'rl4qe' }],
    }),
  );
  // Admission before the body is read; the deadline covers reading, refining and generating.
  app.use('/v1/*', admission.middleware());
  app.use('/v1/*', limitBody(opts.maxBodyBytes ?? SERVE_APP_DEFAULTS.maxBodyBytes));
  app.use('/v1/*', deadline(opts.requestTimeoutMs ?? SERVE_APP_DEFAULTS.requestTimeoutMs));
  app.post('/v1/refine', (c) => handleRefine(c, opts.refiner));
  app.post('/v1/chat/completions', (c) =>
    handleChat(c, { refiner: opts.refiner, generator: opts.generator, modelId }),
  );

  app.notFound((c) =>
    sendError(
      c,
      httpError(
        404,
        `no route ${c.req.method} ${c.req.path}`,
        'invalid_request_error',
        'not_found',
      ),
    ),
  );
  app.onError((err, c) => {
    log({
      level: 'error',
      msg: 'unhandled',
      error: err instanceof Error ? err.message : String(err),
    });
    return sendError(c, httpError(500, 'internal server error', 'server_error', 'internal'));
  });

  return {
    app,
    inFlight: () => admission.active,
    drain: () => {
      admission.draining = true;
    },
  };
}
