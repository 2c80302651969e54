// The local-engine backend: rl4qe's own models (src/models) decoded by src/sampling, in-process
// and batched, with an optional PEFT LoRA adapter (a trained refiner). A model is a GGUF file or
// a Hugging Face directory (config.json + safetensors); the tokenizer and chat template come from
// the same file/directory unless given. Loading is lazy (the first request, or load()), like the
// llama.cpp backend, so constructing a generator is cheap and its config errors come first.
//
// Requests become few generate() calls: requests with the same sampling parameters (temperature,
// top-p, top-k, max tokens) decode together, at most maxBatchSize at a time, also across
// concurrent generate() calls (one queue); generate() pads and masks so each sequence decodes
// exactly as it would alone. Each request has its own stop strings and random stream (its
// seed), so results do not depend on batching.
import { randomInt } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { nativeStatus } from '../backend/index.js';
import {
  loadGgufModel,
  loadSafetensorsModel,
  resolveModel,
  type CausalLM,
  type LoadedModel,
  type ModelConfig,
} from '../models/index.js';
import { generate as decode, type Generation } from '../sampling/index.js';
import { ChatTemplate, Tokenizer, checkCompatible } from '../tokenizer/index.js';
import { ConfigError, NotFoundError, UnsupportedError } from '../util/errors.js';
import { createLogger } from '../util/log.js';
import { BatchQueue } from './batch-queue.js';
import { localModelIdentity, textIdentity, tokenizerIdentity } from './identity.js';
import { LocalWorkerClient, WorkerExitError } from './local-worker-client.js';
import {
  adapterSha256,
  attachAdapter,
  isGgufAdapterPath,
  readPeftConfig,
  type GgufLoraAdapterInfo,
  type PeftAdapterInfo,
} from './peft-adapter.js';
import {
  chatOf,
  requestProblem,
  type FinishReason,
  type GeneratorRequestOptions,
  type GenerationFailure,
  type GenerationRequest,
  type GenerationResult,
  type Generator,
  type GeneratorIdentity,
  type GeneratorParams,
} from './types.js';

const log = createLogger('generators.local');

/** Default maxTokens for a request that sets none (capped by the context). */
export const LOCAL_DEFAULT_MAX_TOKENS = 512;

/**
 * End-of-turn tokens that chat models emit instead of (or besides) their EOS: generation stops at
 * any of them that the tokenizer has as a special token (transformers' generation_config lists
 * them the same way, e.g. Qwen2.5-Instruct stops at <|im_end|> and <|endoftext|>).
 */
const END_OF_TURN_TOKENS = [
  '<|im_end|>',
  '<|endoftext|>',
  '<|eot_id|>',
  '<|end_of_text|>',
  '<end_of_turn>',
  '<|end|>',
  '<|EOT|>',
];

export interface LocalEngineGeneratorOptions {
  /** A GGUF file or a Hugging Face model directory (config.json + *.safetensors). */
  model: string;
  /** Optional PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors). */
  adapter?: string;
  /** Tokenizer: a directory with tokenizer.json or a GGUF file. Default: the model's own. */
  tokenizer?: string;
  /** Jinja chat template text overriding the tokenizer's. */
  chatTemplate?: string;
  /** Longest sequence (prompt + completion) in tokens. Default: the model's context (≤ 32768). */
  contextSize?: number;
  /**
   * 'auto' (default): 'quantized' for a GGUF file, 'float32' for a Hugging Face directory.
   * 'quantized' keeps the GGUF file's blocks (several times less memory and faster decoding,
   * docs/benchmarks.md; the same values: results differ only by float32 summation order);
   * 'float32' dequantises every weight. Hugging Face directories are float32 only.
   */
  weights?: 'auto' | 'float32' | 'quantized';
  /** Requests decoded together in one batch. Default 8. */
  maxBatchSize?: number;
  /**
   * Before each batch that is not full, wait up to this long for more requests (default 0).
   * For servers: concurrent requests arrive a few ms apart and would otherwise decode in a
   * batch of one followed by a batch of the rest (batch-queue.ts).
   */
  batchWaitMs?: number;
  /** Token ids that end a completion. Default: the model's EOS ids + its end-of-turn tokens. */
  stopTokenIds?: number[];
  /**
   * Native-backend threads. The engine is process-wide: this sets the thread count for every
   * model in the process (default: RL4QE_THREADS, else all cores).
   */
  threads?: number;
  /** Sampling parameters for requests that leave them unset. Built-in: temperature 0 (greedy). */
  defaultParams?: GeneratorParams;
  /**
   * Run the engine in a worker thread (default false). Decoding is synchronous: in-process it
   * holds the event loop for a whole batch; in a worker the main thread stays responsive (what
   * `rl4qe serve` wants). engine()/promptIds() are then unavailable (the model lives in the worker).
   */
  worker?: boolean;
}

/** What a loaded local generator runs on (for tests and for callers that score with the same model). */
export interface LocalEngine {
  model: CausalLM;
  config: ModelConfig;
  tokenizer: Tokenizer;
  /** The chat template requests are rendered with (undefined: the model has none). */
  chatTemplate?: ChatTemplate;
  stopTokenIds: number[];
  adapter?: PeftAdapterInfo | GgufLoraAdapterInfo;
}

interface Prepared {
  index: number;
  request: GenerationRequest;
  ids: number[];
  maxNew: number;
  temperature: number;
  topP?: number;
  topK?: number;
  seed: number;
  stop: string[];
}

/** A prepared request waiting in the decode queue. */
interface Queued extends Prepared {
  /** Requests with the same key can share a generate() call. */
  key: string;
  /** The loaded engine it decodes on. */
  engine: LocalEngine;
  signal?: AbortSignal;
  /** When its generate() call started. */
  t0: number;
  resolve: (r: GenerationResult) => void;
}

/**
 * The weights mode a local model loads with: 'auto' (or unset) is 'quantized' for a GGUF file
 * (measured faster and several times smaller, docs/benchmarks.md) and 'float32' for a Hugging
 * Face directory (safetensors have no quantised blocks); an explicit mode is kept as given.
 */
export function resolveLocalWeights(
  modelPath: string,
  weights: 'auto' | 'float32' | 'quantized' | undefined,
): 'float32' | 'quantized' {
  if (weights === 'float32' || weights === 'quantized') return weights;
  return statSync(modelPath).isDirectory() ? 'float32' : 'quantized';
}

export class LocalEngineGenerator implements Generator {
  readonly identity: GeneratorIdentity;
  readonly modelPath: string;
  readonly adapterPath?: string;
  /** The weights mode in effect ('auto' resolved for this model). */
  readonly weights: 'float32' | 'quantized';
  private loading: Promise<LocalEngine> | undefined;
  private disposed = false;
  private readonly where: string;
  private readonly maxBatchSize: number;
  private readonly queue: BatchQueue<Queued>;
  private client: LocalWorkerClient | undefined;

  constructor(private readonly opts: LocalEngineGeneratorOptions) {
    const where = 'generator backend local';
    // A path, or a Hub repo id (org/name[@rev]) resolved into the Hugging Face cache.
    this.modelPath = resolveModel(opts.model);
    if (!existsSync(this.modelPath))
      throw new NotFoundError('model not found', {
        where,
        expected: 'a GGUF file or a Hugging Face model directory (config.json + *.safetensors)',
        found: this.modelPath,
        hint: 'check generator.model; the offline test model: node scripts/fetch-test-models.mjs',
      });
    if (
      statSync(this.modelPath).isDirectory() &&
      !existsSync(path.join(this.modelPath, 'config.json'))
    )
      throw new NotFoundError('the model directory has no config.json', {
        where,
        expected: 'a Hugging Face model directory (config.json + *.safetensors) or a GGUF file',
        found: this.modelPath,
      });
    if (opts.tokenizer !== undefined && !existsSync(opts.tokenizer))
      throw new NotFoundError('tokenizer not found', {
        where: `${where}: tokenizer`,
        found: path.resolve(opts.tokenizer),
        hint: 'a directory with tokenizer.json, or a GGUF file',
      });
    const int = (name: string, v: number | undefined): void => {
      if (v !== undefined && !(Number.isInteger(v) && v > 0))
        throw new ConfigError(`${name} must be a positive integer`, {
          where: `${where}: ${name}`,
          found: String(v),
        });
    };
    int('contextSize', opts.contextSize);
    int('maxBatchSize', opts.maxBatchSize);
    int('threads', opts.threads);
    this.maxBatchSize = opts.maxBatchSize ?? 8;
    let model = localModelIdentity(this.modelPath);
    if (opts.adapter !== undefined) {
      this.adapterPath = path.resolve(opts.adapter);
      // Unsupported adapters fail here, before any loading (a GGUF LoRA is read when attached).
      if (!isGgufAdapterPath(this.adapterPath)) readPeftConfig(this.adapterPath);
      // The full content hash: two adapters never share cached answers, even with the same path.
      model += `+lora:${this.adapterPath}:${adapterSha256(this.adapterPath).slice(0, 16)}`;
    }
    if (opts.tokenizer !== undefined)
      model += `+tokenizer:${tokenizerIdentity(path.resolve(opts.tokenizer))}`;
    if (opts.chatTemplate !== undefined) model += `+template:${textIdentity(opts.chatTemplate)}`;
    if (opts.stopTokenIds !== undefined) model += `+stop:${opts.stopTokenIds.join(',')}`;
    // Summation order differs from float32, so near-ties may decode differently: its own entries.
    // The resolved mode decides, so 'auto' on a GGUF shares entries with an explicit 'quantized'
    // and never with float32 answers cached before 'auto' became the default.
    this.weights = resolveLocalWeights(this.modelPath, opts.weights);
    if (this.weights === 'quantized') model += '+weights:quantized';
    // Greedy unless a temperature is given (prepare()).
    this.identity = { backend: 'local', model, params: opts.defaultParams, defaultTemperature: 0 };
    this.where = `local backend ${path.basename(this.modelPath)}${
      this.adapterPath ? ` + ${path.basename(this.adapterPath)}` : ''
    }`;
    this.queue = new BatchQueue<Queued>({
      maxBatchSize: this.maxBatchSize,
      batchWaitMs: opts.batchWaitMs,
      run: (batch) => this.runBatch(batch),
      drop: (q, why) =>
        q.resolve(
          this.fail(
            q.request,
            'aborted',
            why === 'closed' ? 'generator disposed' : 'aborted by the caller',
          ),
        ),
      crash: (q, e) =>
        q.resolve(
          this.fail(
            q.request,
            'backend_error',
            e instanceof Error ? e.message : String(e),
            undefined,
            1,
          ),
        ),
    });
  }

  /** Loads the model now (otherwise the first request does). */
  async load(): Promise<void> {
    if (this.opts.worker) {
      if (this.disposed) throw new ConfigError('the generator is disposed', { where: this.where });
      await this.workerClient().send({ type: 'load' });
    } else await this.engine();
  }

  private workerClient(): LocalWorkerClient {
    this.client ??= new LocalWorkerClient({ ...this.opts, worker: false });
    return this.client;
  }

  /** The loaded model, tokenizer and stop tokens (loads on first use). In-process mode only. */
  engine(): Promise<LocalEngine> {
    if (this.opts.worker)
      return Promise.reject(
        new UnsupportedError('the model lives in a worker thread', {
          where: this.where,
          hint: 'create the generator without `worker: true` to use the model directly',
        }),
      );
    if (this.disposed)
      return Promise.reject(new ConfigError('the generator is disposed', { where: this.where }));
    this.loading ??= this.doLoad();
    return this.loading;
  }

  private async doLoad(): Promise<LocalEngine> {
    const t0 = performance.now();
    if (this.opts.threads !== undefined) nativeStatus().tools?.setThreads(this.opts.threads);
    const isDir = statSync(this.modelPath).isDirectory();
    const mopts =
      this.opts.contextSize !== undefined ? { maxPositions: this.opts.contextSize } : {};
    const tokSrc =
      this.opts.tokenizer !== undefined ? path.resolve(this.opts.tokenizer) : this.modelPath;
    const tokenizer = statSync(tokSrc).isDirectory()
      ? await Tokenizer.fromDirectory(tokSrc)
      : Tokenizer.fromGgufFile(tokSrc);
    if (isDir && this.opts.weights === 'quantized') {
      throw new ConfigError('quantized weights need a GGUF model', {
        where: this.where,
        expected: "a GGUF file with weights: 'quantized'",
        found: 'a Hugging Face model directory (float32 safetensors)',
        hint: "drop weights: 'quantized', or convert the model to GGUF",
      });
    }
    const loaded: LoadedModel = isDir
      ? loadSafetensorsModel(this.modelPath, mopts)
      : // The library loader keeps its explicit float32 default (src/models/load.ts): it is what
        // the parity fixtures and gradient checks compare against. The user-facing default
        // ('auto' → quantized for GGUF) is decided here, once, and recorded in the identity.
        loadGgufModel(this.modelPath, { ...mopts, weights: this.weights });
    const { model, config } = loaded;
    try {
      checkCompatible(tokenizer, config.vocabSize, { where: tokSrc });
      const adapter = this.adapterPath ? attachAdapter(model, this.adapterPath).info : undefined;
      let chatTemplate: ChatTemplate | undefined;
      if (this.opts.chatTemplate !== undefined) {
        const special: Record<string, string> = {};
        for (const f of ['bos_token', 'eos_token', 'unk_token', 'pad_token'] as const) {
          const t = tokenizer.config[f];
          if (typeof t === 'string') special[f] = t;
        }
        chatTemplate = new ChatTemplate(
          this.opts.chatTemplate,
          `${this.where}: chatTemplate`,
          special,
        );
      } else if (tokenizer.chatTemplate !== undefined) chatTemplate = tokenizer.getChatTemplate();
      const stopTokenIds = this.opts.stopTokenIds ?? defaultStopTokens(config, tokenizer);
      log.debug('model loaded', {
        model: this.modelPath,
        adapter: this.adapterPath,
        loraModules: adapter?.modules.length,
        ms: Math.round(performance.now() - t0),
      });
      return { model, config, tokenizer, chatTemplate, stopTokenIds, adapter };
    } catch (e) {
      model.release();
      throw e;
    }
  }

  private fail(
    r: GenerationRequest,
    kind: GenerationFailure['kind'],
    message: string,
    hint?: string,
    attempts = 0,
  ): GenerationFailure {
    return {
      ok: false,
      id: r.id,
      kind,
      message: `${this.where}, request ${r.id}: ${message}`,
      attempts,
      ...(hint ? { hint } : {}),
    };
  }

  /** The prompt token ids a request decodes from (chat template rendered, or the raw prompt). */
  promptIds(E: LocalEngine, r: GenerationRequest): number[] {
    if (r.prompt !== undefined) return E.tokenizer.encode(r.prompt);
    if (!E.chatTemplate)
      throw new ConfigError('the model has no chat template', {
        where: this.where,
        hint: 'send a raw `prompt`, or set chatTemplate in the generator config',
      });
    const text = E.chatTemplate.render(
      chatOf(r).map((m) => ({ role: m.role, content: m.content })),
      { addGenerationPrompt: true },
    );
    // The template writes BOS itself where the model wants it (as apply_chat_template + encode
    // with add_special_tokens=False in transformers).
    return E.tokenizer.encode(text, { addSpecialTokens: false });
  }

  private prepare(
    E: LocalEngine,
    r: GenerationRequest,
    index: number,
  ): Prepared | GenerationFailure {
    let ids: number[];
    try {
      ids = this.promptIds(E, r);
    } catch (e) {
      return this.fail(r, 'bad_request', e instanceof Error ? e.message : String(e));
    }
    if (ids.length === 0)
      return this.fail(r, 'bad_request', 'the prompt is empty after tokenization');
    const ctx = E.model.maxPositions;
    // generate() needs prompt + new − 1 ≤ context (the last token is never fed back).
    if (ids.length > ctx)
      return this.fail(
        r,
        'backend_error',
        `the prompt has ${ids.length} tokens; the context holds ${ctx}`,
        'shorten the prompt, or raise contextSize (up to the model context length)',
      );
    const p = { ...this.opts.defaultParams, ...r.params };
    const maxNew = Math.min(p.maxTokens ?? LOCAL_DEFAULT_MAX_TOKENS, ctx - ids.length + 1);
    const temperature = p.temperature ?? 0;
    return {
      index,
      request: r,
      ids,
      maxNew,
      temperature,
      topP: p.topP,
      topK: p.topK,
      // Unseeded sampling draws a fresh seed, like a hosted API; greedy ignores it.
      seed: p.seed ?? (temperature > 0 ? randomInt(2 ** 31) : 0),
      // An empty stop string would end every completion at once: ignored.
      stop: (p.stop ?? []).filter((s) => s.length > 0),
    };
  }

  async generate(
    requests: readonly GenerationRequest[],
    opts: GeneratorRequestOptions = {},
  ): Promise<GenerationResult[]> {
    if (this.opts.worker) {
      if (this.disposed) return requests.map((r) => this.fail(r, 'aborted', 'generator disposed'));
      try {
        const rs = await this.workerClient().send(
          { type: 'generate', requests: [...requests] },
          opts.signal,
        );
        return rs ?? [];
      } catch (e) {
        if (!(e instanceof WorkerExitError)) throw e; // load errors: configuration, thrown
        return requests.map((r) =>
          this.fail(
            r,
            'backend_error',
            e.message,
            'see the log; dispose and recreate the generator',
          ),
        );
      }
    }
    const t0 = performance.now();
    const signal = opts.signal;
    const results: Promise<GenerationResult>[] = [];
    const todo: number[] = [];
    requests.forEach((r, i) => {
      const problem = requestProblem(r);
      let f: GenerationFailure | undefined;
      if (problem) f = this.fail(r, 'bad_request', problem);
      else if (this.disposed) f = this.fail(r, 'aborted', 'generator disposed');
      else if (signal?.aborted) f = this.fail(r, 'aborted', 'aborted before start');
      else todo.push(i);
      if (f) results[i] = Promise.resolve(f);
    });
    if (todo.length === 0) return Promise.all(results);
    // Loading errors (bad file, missing tokenizer, bad adapter) are configuration errors:
    // thrown, not reported per request.
    const E = await this.engine();
    const queued: Queued[] = [];
    for (const i of todo) {
      const request = requests[i];
      if (request === undefined) continue;
      const p = this.prepare(E, request, i);
      if ('ok' in p) {
        results[i] = Promise.resolve(p);
        continue;
      }
      results[i] = new Promise<GenerationResult>((resolve) =>
        queued.push({
          ...p,
          key: JSON.stringify([p.temperature, p.topP, p.topK, p.maxNew]),
          engine: E,
          signal,
          t0,
          resolve,
        }),
      );
    }
    this.queue.push(queued);
    return Promise.all(results);
  }

  /** Batches run so far and sequences decoded in them (how well requests were batched). */
  stats(): { batches: number; sequences: number } {
    return this.queue.stats();
  }

  /** Decodes one batch of requests that share sampling parameters (the queue's `run`). */
  private runBatch(chunk: Queued[]): void {
    const first = chunk[0];
    if (first === undefined) return;
    const E = first.engine;
    let gens: Generation[];
    try {
      gens = decode(E.model, {
        prompts: chunk.map((p) => p.ids),
        maxNewTokens: first.maxNew,
        temperature: first.temperature,
        topP: first.topP,
        topK: first.topK,
        seeds: chunk.map((p) => p.seed),
        stopTokens: E.stopTokenIds,
        stopStrings: chunk.map((p) => p.stop),
        decode: (ids) => E.tokenizer.decode(ids, { skipSpecialTokens: true }),
      });
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      for (const p of chunk) p.resolve(this.fail(p.request, 'backend_error', msg, undefined, 1));
      return;
    }
    const end = performance.now();
    chunk.forEach((p, k) => {
      const g = gens[k];
      if (g === undefined) {
        p.resolve(
          this.fail(p.request, 'backend_error', 'no output for the sequence', undefined, 1),
        );
        return;
      }
      p.resolve({
        ok: true,
        id: p.request.id,
        text: g.text ?? '',
        finishReason: mapFinish(g.finishReason),
        usage: { promptTokens: p.ids.length, completionTokens: g.tokens.length },
        // From the caller's generate() call: queueing, earlier batches and this one.
        latencyMs: end - p.t0,
        costUsd: 0,
        cached: false,
        attempts: 1,
      });
    });
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.queue.close();
    if (this.client) await this.client.close();
    if (!this.loading) return;
    const E = await this.loading.catch(() => undefined);
    E?.model.release();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}

/** The model's EOS ids, the tokenizer's EOS, and the end-of-turn specials it has. */
export function defaultStopTokens(config: ModelConfig, tokenizer: Tokenizer): number[] {
  const ids = new Set<number>(config.eosTokenIds);
  if (tokenizer.eos) ids.add(tokenizer.eos.id);
  for (const t of END_OF_TURN_TOKENS) {
    const id = tokenizer.tokenToId(t);
    if (id !== undefined && tokenizer.isSpecial(id)) ids.add(id);
  }
  return [...ids].sort((a, b) => a - b);
}

function mapFinish(f: Generation['finishReason']): FinishReason {
  return f === 'length' ? 'length' : 'stop';
}
