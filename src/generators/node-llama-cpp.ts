// The slice of node-llama-cpp's API that rl4qe uses, typed here rather than imported from the
// package: node-llama-cpp is an optional dependency, and `npm ci --omit=optional` (a checkout
// for users who do not need llama.cpp) must still type-check and build. The real module is
// loaded by name at run time (`loadNodeLlamaCpp`); these types are checked against it by the
// tests that drive it (test/generators/llamacpp*.test.ts, test/io/export-llamacpp.test.ts).
import { UnsupportedError } from '../util/errors.js';

/** The pinned version: newer ones break `npm ci` on this project's machines. */
export const NODE_LLAMA_CPP_VERSION = '3.21.1';

/** Generation options shared by chat sessions and completions. */
export interface NlcGenerateOptions {
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  seed?: number;
  customStopTriggers?: string[];
  signal?: AbortSignal;
  stopOnAbortSignal?: boolean;
}

export interface NlcSequence {
  /** Tokens held by the sequence (its KV cache position). */
  readonly nextTokenIndex: number;
  /** Greedy or sampled continuation of `tokens`, one token at a time. */
  evaluate(tokens: number[], opts: { temperature: number }): AsyncIterable<number>;
}

export interface NlcContext {
  getSequence(): NlcSequence;
  dispose(): Promise<void>;
}

export interface NlcModel {
  tokenize(text: string): number[];
  createContext(opts: {
    contextSize: number;
    sequences?: number;
    batchSize?: number;
    threads?: number;
    lora?: { adapters: { filePath: string }[] };
  }): Promise<NlcContext>;
  dispose(): Promise<void>;
}

export interface NlcLlama {
  loadModel(opts: { modelPath: string }): Promise<NlcModel>;
  dispose(): Promise<void>;
}

/** One turn of a chat history, in node-llama-cpp's shape. */
export type NlcHistoryItem =
  | { type: 'system'; text: string }
  | { type: 'user'; text: string }
  | { type: 'model'; response: string[] };

export interface NlcChatSession {
  setChatHistory(history: NlcHistoryItem[]): void;
  promptWithMeta(
    text: string,
    opts: NlcGenerateOptions,
  ): Promise<{ responseText: string; stopReason: string }>;
}

export interface NlcCompletion {
  generateCompletionWithMeta(
    prompt: string,
    opts: NlcGenerateOptions,
  ): Promise<{ response: string; metadata: { stopReason: string } }>;
  dispose(opts: { disposeSequence: boolean }): void;
}

export interface NlcModule {
  getLlama(opts: { gpu: false | 'auto'; build?: 'never'; logLevel: string }): Promise<NlcLlama>;
  LlamaLogLevel: { error: string };
  LlamaChatSession: new (opts: { contextSequence: NlcSequence }) => NlcChatSession;
  LlamaCompletion: new (opts: { contextSequence: NlcSequence }) => NlcCompletion;
}

// A name in a variable: TypeScript does not resolve it, so the build needs no node-llama-cpp.
const SPEC = 'node-llama-cpp';

function notInstalled(err: unknown): UnsupportedError {
  return new UnsupportedError(
    'the llama.cpp backend needs node-llama-cpp, which is not installed',
    {
      where: 'generator backend llama.cpp',
      found: err instanceof Error ? err.message.split('\n')[0] : String(err),
      hint: `npm i -E node-llama-cpp@${NODE_LLAMA_CPP_VERSION} (an optional dependency), or use the openai or local backend`,
      cause: err,
    },
  );
}

/**
 * Throws the install hint when node-llama-cpp cannot be resolved from here, without loading it:
 * called when a llama.cpp generator is built, so `rl4qe serve` or `generate` refuse to start
 * instead of failing their first request.
 */
export function assertNodeLlamaCppInstalled(): void {
  try {
    import.meta.resolve(SPEC);
  } catch (err) {
    throw notInstalled(err);
  }
}

/** Loads node-llama-cpp, or explains how to get it. */
export async function loadNodeLlamaCpp(): Promise<NlcModule> {
  try {
    return (await import(SPEC)) as NlcModule;
  } catch (err) {
    throw notInstalled(err);
  }
}
