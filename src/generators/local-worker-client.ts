// The main-thread side of LocalEngineGenerator({worker: true}) and the message protocol with
// local-worker.ts. Calls are numbered, results come back by message; typed errors (a model that
// fails to load) cross the thread as plain data and are rebuilt as the same class with the same
// where / expected / found / hint, so the CLI prints and exits exactly as in-process.
import { Worker } from 'node:worker_threads';
import { applyOmpDefaults } from '../backend/index.js';
import {
  ConfigError,
  FormatError,
  NotFoundError,
  Rl4qeError,
  ShapeError,
  UnsupportedError,
  type ErrorDetails,
} from '../util/errors.js';
import type { GenerationRequest, GenerationResult } from './types.js';

/** An error as it crosses the thread boundary. */
export interface WireError {
  name: string;
  /** The message without the where prefix and the expected/found/HINT lines. */
  message: string;
  where?: string;
  expected?: string;
  found?: string;
  hint?: string;
}

/** Messages to the worker thread. */
export type WorkerIn =
  | { type: 'generate'; call: number; requests: GenerationRequest[] }
  | { type: 'abort'; call: number }
  | { type: 'load'; call: number }
  | { type: 'dispose'; call: number };

/** Messages from the worker thread. */
export type WorkerOut =
  | { type: 'done'; call: number; results?: GenerationResult[] }
  | { type: 'error'; call: number; error: WireError };

const ERROR_CLASSES: Record<string, new (message: string, details?: ErrorDetails) => Error> = {
  ConfigError,
  NotFoundError,
  FormatError,
  ShapeError,
  UnsupportedError,
};

/** The worker side: an error as data. Rl4qeErrors keep their fields (and a message without them). */
export function toWireError(e: unknown): WireError {
  if (!(e instanceof Error)) return { name: 'Error', message: String(e) };
  if (!(e instanceof Rl4qeError)) return { name: e.name, message: e.message };
  const d = { where: e.where, expected: e.expected, found: e.found, hint: e.hint };
  // Rl4qeError's message is `where: message` + one line per detail (util/errors formatMessage);
  // strip them so the rebuilt error formats the same text once, not twice.
  let message = e.message;
  const prefix = d.where !== undefined ? `${d.where}: ` : '';
  const suffix = [
    d.expected !== undefined ? `\n  expected: ${d.expected}` : '',
    d.found !== undefined ? `\n  found:    ${d.found}` : '',
    d.hint !== undefined ? `\n  HINT: ${d.hint}` : '',
  ].join('');
  if (message.startsWith(prefix) && message.endsWith(suffix))
    message = message.slice(prefix.length, message.length - suffix.length);
  else return { name: e.name, message: e.message };
  return { name: e.name, message, ...definedOnly(d) };
}

function definedOnly(d: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(d)) if (v !== undefined) out[k] = v;
  return out;
}

/** The main-thread side: the same class (for the typed ones) with the same details. */
export function fromWireError(w: WireError): Error {
  const Cls = ERROR_CLASSES[w.name];
  if (!Cls) {
    const e = new Error(w.message);
    e.name = w.name;
    return e;
  }
  return new Cls(w.message, {
    where: w.where,
    expected: w.expected,
    found: w.found,
    hint: w.hint,
  });
}

/** The worker thread died (crash, out of memory, terminated): requests fail, they do not throw. */
export class WorkerExitError extends Error {}

interface Pending {
  resolve: (r: GenerationResult[] | undefined) => void;
  reject: (e: Error) => void;
}

/** Starts `local-worker.js` with `workerData` and forwards calls to it. */
export class LocalWorkerClient {
  private readonly worker: Worker;
  private next = 0;
  private readonly pending = new Map<number, Pending>();
  private dead: Error | undefined;

  constructor(workerData: unknown) {
    // The worker's addon reads OpenMP's settings from the real environment: set them here.
    applyOmpDefaults();
    this.worker = new Worker(new URL('./local-worker.js', import.meta.url), { workerData });
    this.worker.unref(); // only pending calls keep the process alive
    this.worker.on('message', (m: WorkerOut) => {
      const p = this.pending.get(m.call);
      if (!p) return;
      this.settled(m.call);
      if (m.type === 'done') p.resolve(m.results);
      else p.reject(fromWireError(m.error));
    });
    const die = (e: Error): void => {
      this.dead = e;
      for (const [call, p] of this.pending) {
        this.settled(call);
        p.reject(e);
      }
    };
    this.worker.on('error', (e) => die(new WorkerExitError(`the worker failed: ${e.message}`)));
    this.worker.on('exit', (code) => {
      if (!this.dead) die(new WorkerExitError(`the worker exited (code ${code})`));
    });
  }

  private settled(call: number): void {
    this.pending.delete(call);
    if (this.pending.size === 0) this.worker.unref();
  }

  send(
    msg: { type: 'generate'; requests: GenerationRequest[] } | { type: 'load' | 'dispose' },
    signal?: AbortSignal,
  ): Promise<GenerationResult[] | undefined> {
    if (this.dead) return Promise.reject(this.dead);
    const call = this.next++;
    const done = new Promise<GenerationResult[] | undefined>((resolve, reject) =>
      this.pending.set(call, { resolve, reject }),
    );
    this.worker.ref();
    const out: WorkerIn = { ...msg, call };
    this.worker.postMessage(out);
    if (signal) {
      const abort: WorkerIn = { type: 'abort', call };
      const onAbort = (): void => this.worker.postMessage(abort);
      signal.addEventListener('abort', onAbort, { once: true });
      void done.finally(() => signal.removeEventListener('abort', onAbort)).catch(() => {});
    }
    return done;
  }

  async close(): Promise<void> {
    if (!this.dead) await this.send({ type: 'dispose' }).catch(() => undefined);
    await this.worker.terminate();
  }
}
