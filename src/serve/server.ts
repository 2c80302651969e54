// Binds the serve app to a socket (@hono/node-server on node:http) and shuts it down gracefully:
// stop accepting, answer new requests on kept-alive sockets with 503, let in-flight requests
// finish (up to a grace period), then free the refiner and the generator.
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import { NetworkError } from '../util/errors.js';
import { SERVE_APP_DEFAULTS, createServeApp, jsonStderrLog, type ServeAppOptions } from './app.js';

/**
 * The default port: not 8080 (llama-server), 8000 (vLLM), 11434 (Ollama), 30000 (SGLang) or
 * 1234 (LM Studio), so `rl4qe serve` can run beside the generator server it forwards to.
 */
export const DEFAULT_SERVE_PORT = 8431;

export interface StartServerOptions extends ServeAppOptions {
  /** Default 127.0.0.1: only this machine can connect unless you choose otherwise. */
  host?: string;
  /** 0 = any free port. Default DEFAULT_SERVE_PORT (8431). */
  port?: number;
  /** How long close() waits for in-flight requests before cutting connections. Default 30 s. */
  shutdownGraceMs?: number;
  /** Dispose refiner and generator on close (default true). */
  disposeOnClose?: boolean;
}

export interface RunningServer {
  url: string;
  port: number;
  host: string;
  inFlight(): number;
  /** Graceful shutdown; resolves when every connection is closed and the models are freed. Idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function startServer(opts: StartServerOptions): Promise<RunningServer> {
  const host = opts.host ?? '127.0.0.1';
  const log = opts.log ?? jsonStderrLog;
  const { app, inFlight, drain } = createServeApp(opts);
  const port0 = opts.port ?? DEFAULT_SERVE_PORT;
  const server = await new Promise<Server>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: host, port: port0 }) as Server;
    s.once('listening', () => resolve(s));
    s.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new NetworkError(`cannot listen on ${host}:${port0}`, {
          found: err.code ?? err.message,
          hint: err.code === 'EADDRINUSE' ? 'choose another --port (0 = any free port)' : undefined,
          cause: err,
        }),
      ),
    );
  });
  // Node's socket-level guard against clients that never finish sending (the request deadline
  // itself is the app's, middleware.ts): slow clients cannot hold a slot forever.
  server.requestTimeout = (opts.requestTimeoutMs ?? SERVE_APP_DEFAULTS.requestTimeoutMs) + 10_000;
  server.headersTimeout = 30_000;
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  log({
    level: 'info',
    msg: 'listening',
    url,
    refiner: opts.refiner.name,
    generator: opts.generator.identity,
  });

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      log({ level: 'info', msg: 'shutting down', inFlight: inFlight() });
      drain();
      const closed = new Promise<void>((res) => server.close(() => res()));
      server.closeIdleConnections();
      const grace = opts.shutdownGraceMs ?? 30_000;
      const t0 = Date.now();
      while (inFlight() > 0 && Date.now() - t0 < grace) await new Promise((r) => setTimeout(r, 20));
      // Idle keep-alive sockets that finished their last response go now; stragglers past the grace are cut.
      server.closeIdleConnections();
      if (inFlight() > 0)
        log({ level: 'warn', msg: 'grace period over, closing connections', inFlight: inFlight() });
      server.closeAllConnections();
      await closed;
      if (opts.disposeOnClose !== false) {
        await opts.refiner.dispose();
        await opts.generator.dispose();
      }
      log({ level: 'info', msg: 'stopped' });
    })();
    return closing;
  };
  return { url, port, host, inFlight, close, [Symbol.asyncDispose]: close };
}
