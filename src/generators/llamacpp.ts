// llama.cpp backend through node-llama-cpp: a GGUF file on CPU (or GPU), run in-process.
// node-llama-cpp is an optionalDependency loaded with a dynamic import the first time a request
// arrives, so rl4qe installs and runs without it. One model, one context with `sequences` slots
// (requests in parallel); each slot keeps one chat session whose evaluated tokens stay in the KV
// cache, so the next request that shares a prefix (the same system prompt, the same problem)
// re-evaluates only the new tokens ("context reuse").
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ggufFileIdentity } from './identity.js';
import { resolveModel } from '../models/index.js';
import { NotFoundError } from '../util/errors.js';
import { createLogger } from '../util/log.js';
import { cachePaths } from '../util/paths.js';
import { Limiter } from './limiter.js';
import {
  assertNodeLlamaCppInstalled,
  loadNodeLlamaCpp,
  type NlcChatSession,
  type NlcContext,
  type NlcHistoryItem,
  type NlcLlama,
  type NlcModel,
  type NlcModule,
  type NlcSequence,
} from './node-llama-cpp.js';
import {
  requestProblem,
  type Completion,
  type FinishReason,
  type GeneratorRequestOptions,
  type GenerationFailure,
  type GenerationRequest,
  type GenerationResult,
  type Generator,
  type GeneratorIdentity,
  type GeneratorParams,
} from './types.js';

const log = createLogger('generators.llamacpp');

/** The default offline model: SmolLM2-135M-Instruct Q4_1, fetched by scripts/fetch-test-models.mjs. */
export function defaultGgufPath(): string {
  return path.join(cachePaths.testModels(), 'smollm2-135m-instruct-q4_1.gguf');
}

export interface LlamaCppGeneratorOptions {
  /** GGUF file. Default: defaultGgufPath(). */
  modelPath?: string;
  /** Tokens per sequence slot (prompt + completion). Default 2048. */
  contextSize?: number;
  /** Requests evaluated in parallel (context sequences). Default 1. */
  sequences?: number;
  /**
   * CPU threads. Default: half the logical cores (at least 1). llama.cpp's threads spin while
   * waiting for each other, so on a shared or small machine more threads than free cores is far
   * slower (measured here: 1 thread 0.8 s, 2 threads 27 s for the same 8 tokens on 2 busy cores).
   */
  threads?: number;
  /** false (default): CPU only; 'auto': a GPU if node-llama-cpp finds one. */
  gpu?: false | 'auto';
  /** Sampling parameters for requests that do not set them. */
  defaultParams?: GeneratorParams;
}

type NlcHistory = NlcHistoryItem[];

interface Slot {
  sequence: NlcSequence;
  session: NlcChatSession;
}

interface Loaded {
  nlc: NlcModule;
  llama: NlcLlama;
  model: NlcModel;
  context: NlcContext;
  free: Slot[];
}

export class LlamaCppGenerator implements Generator {
  readonly identity: GeneratorIdentity;
  readonly modelPath: string;
  private loading: Promise<Loaded> | undefined;
  private readonly limiter: Limiter;
  private disposed = false;
  private readonly where: string;

  constructor(private readonly opts: LlamaCppGeneratorOptions = {}) {
    // A path, or a Hub repo id (org/name/file.gguf[@rev]) resolved into the Hugging Face cache.
    this.modelPath = resolveModel(opts.modelPath ?? defaultGgufPath());
    if (!existsSync(this.modelPath))
      throw new NotFoundError('GGUF model file not found', {
        where: 'generator backend llama.cpp',
        found: this.modelPath,
        hint:
          opts.modelPath === undefined
            ? 'fetch the default offline model: node scripts/fetch-test-models.mjs'
            : 'check generator.modelPath',
      });
    assertNodeLlamaCppInstalled();
    this.limiter = new Limiter(opts.sequences ?? 1);
    this.identity = {
      backend: 'llama.cpp',
      model: ggufFileIdentity(this.modelPath),
      params: opts.defaultParams,
      // Requests without a temperature decode greedily (`p.temperature ?? 0` below).
      defaultTemperature: 0,
    };
    this.where = `llama.cpp backend ${path.basename(this.modelPath)}`;
  }

  /** Loads the model now (otherwise the first request does). */
  async load(): Promise<void> {
    await this.loaded();
  }

  private loaded(): Promise<Loaded> {
    this.loading ??= this.doLoad();
    return this.loading;
  }

  private async doLoad(): Promise<Loaded> {
    const nlc = await loadNodeLlamaCpp();
    const t0 = performance.now();
    // build: 'never': use the prebuilt binaries shipped as npm packages; never compile at run time.
    const llama = await nlc.getLlama({
      gpu: this.opts.gpu ?? false,
      build: 'never',
      logLevel: nlc.LlamaLogLevel.error,
    });
    const model = await llama.loadModel({ modelPath: this.modelPath });
    const sequences = this.opts.sequences ?? 1;
    const context = await model.createContext({
      sequences,
      contextSize: (this.opts.contextSize ?? 2048) * sequences,
      threads: this.opts.threads ?? Math.max(1, Math.floor(os.availableParallelism() / 2)),
    });
    const free: Slot[] = [];
    for (let i = 0; i < sequences; i++) {
      const sequence = context.getSequence();
      free.push({ sequence, session: new nlc.LlamaChatSession({ contextSequence: sequence }) });
    }
    log.debug('model loaded', {
      model: this.modelPath,
      sequences,
      ms: Math.round(performance.now() - t0),
    });
    return { nlc, llama, model, context, free };
  }

  async generate(
    requests: readonly GenerationRequest[],
    opts: GeneratorRequestOptions = {},
  ): Promise<GenerationResult[]> {
    return Promise.all(requests.map((r) => this.limiter.run(() => this.one(r, opts.signal))));
  }

  private fail(
    r: GenerationRequest,
    kind: GenerationFailure['kind'],
    message: string,
    hint?: string,
  ): GenerationFailure {
    return {
      ok: false,
      id: r.id,
      kind,
      message: `${this.where}, request ${r.id}: ${message}`,
      attempts: 1,
      ...(hint ? { hint } : {}),
    };
  }

  private async one(
    r: GenerationRequest,
    signal: AbortSignal | undefined,
  ): Promise<GenerationResult> {
    const problem = requestProblem(r);
    if (problem) return { ...this.fail(r, 'bad_request', problem), attempts: 0 };
    if (this.disposed) return { ...this.fail(r, 'aborted', 'generator disposed'), attempts: 0 };
    if (signal?.aborted) return { ...this.fail(r, 'aborted', 'aborted before start'), attempts: 0 };
    // Loading errors (missing addon, bad GGUF) are configuration errors: thrown, not per request.
    const L = await this.loaded();
    const slot = L.free.pop()!; // the limiter guarantees one is free
    const t0 = performance.now();
    try {
      const p = { ...this.opts.defaultParams, ...r.params };
      const common = {
        maxTokens: p.maxTokens,
        temperature: p.temperature ?? 0,
        topP: p.topP,
        topK: p.topK,
        seed: p.seed,
        customStopTriggers: p.stop && p.stop.length > 0 ? p.stop : undefined,
        signal,
        stopOnAbortSignal: false,
      };
      let text: string;
      let stopReason: string;
      let promptTokens: number;
      if (r.prompt !== undefined) {
        const completion = new L.nlc.LlamaCompletion({ contextSequence: slot.sequence });
        promptTokens = L.model.tokenize(r.prompt).length;
        const res = await completion.generateCompletionWithMeta(r.prompt, common);
        text = res.response;
        stopReason = res.metadata.stopReason;
        completion.dispose({ disposeSequence: false });
      } else {
        const msgs = r.messages!;
        const last = msgs[msgs.length - 1]!;
        if (last.role !== 'user')
          return this.fail(
            r,
            'bad_request',
            `the last message must be from the user, found ${last.role}`,
          );
        const history: NlcHistory = [];
        if (r.system !== undefined) history.push({ type: 'system', text: r.system });
        for (const m of msgs.slice(0, -1)) {
          if (m.role === 'system') history.push({ type: 'system', text: m.content });
          else if (m.role === 'user') history.push({ type: 'user', text: m.content });
          else history.push({ type: 'model', response: [m.content] });
        }
        slot.session.setChatHistory(history);
        const res = await slot.session.promptWithMeta(last.content, common);
        text = res.responseText;
        stopReason = res.stopReason;
        // The sequence holds the rendered chat: prompt + completion.
        promptTokens = Math.max(0, slot.sequence.nextTokenIndex - L.model.tokenize(text).length);
      }
      if (stopReason === 'abort') return this.fail(r, 'aborted', 'aborted by the caller');
      const completionTokens = L.model.tokenize(text).length;
      const c: Completion = {
        ok: true,
        id: r.id,
        text,
        finishReason: mapStop(stopReason),
        usage: { promptTokens, completionTokens },
        latencyMs: performance.now() - t0,
        costUsd: 0,
        cached: false,
        attempts: 1,
      };
      return c;
    } catch (err) {
      if (signal?.aborted) return this.fail(r, 'aborted', 'aborted by the caller');
      const msg = err instanceof Error ? err.message : String(err);
      return this.fail(
        r,
        'backend_error',
        msg,
        /context|too long|exceed/i.test(msg)
          ? 'raise contextSize or shorten the prompt / maxTokens'
          : undefined,
      );
    } finally {
      L.free.push(slot);
    }
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    if (!this.loading) return;
    const L = await this.loading.catch(() => undefined);
    if (!L) return;
    await L.context.dispose();
    await L.model.dispose();
    await L.llama.dispose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}

function mapStop(s: string): FinishReason {
  if (s === 'maxTokens') return 'length';
  if (s === 'eogToken' || s === 'stopGenerationTrigger' || s === 'customStopTrigger') return 'stop';
  return 'other';
}
