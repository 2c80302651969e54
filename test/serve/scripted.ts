// A small deterministic Generator for the service tests that do not need a model: it is a real
// implementation of the Generator contract (not a fetch mock). The last user message steers it:
//   "fail:<kind>"  → that typed failure
//   "slow:<ms>"    → answers after ms (honouring the abort signal)
//   anything else  → `${prefix}(${content})`
import type {
  GeneratorRequestOptions,
  GenerationRequest,
  GenerationResult,
  Generator,
} from '../../src/generators/index.js';
import type { FailureKind } from '../../src/generators/index.js';

export class ScriptedGenerator implements Generator {
  readonly identity = { backend: 'scripted', model: 'scripted' };
  calls: GenerationRequest[] = [];
  disposed = false;

  /** failTag: the marker this generator fails on (`fail` for the answer, `rfail` for the refiner). */
  constructor(
    private readonly prefix: string,
    private readonly failTag = 'fail',
  ) {}

  async generate(
    requests: readonly GenerationRequest[],
    opts: GeneratorRequestOptions = {},
  ): Promise<GenerationResult[]> {
    return Promise.all(
      requests.map(async (r): Promise<GenerationResult> => {
        this.calls.push(r);
        const content = r.messages!.filter((m) => m.role === 'user').at(-1)!.content;
        const fail = new RegExp(`\\b${this.failTag}:(\\w+)`).exec(content);
        if (fail)
          return {
            ok: false,
            id: r.id,
            kind: fail[1] as FailureKind,
            message: `scripted ${fail[1]}`,
            attempts: 1,
          };
        const slow = /slow:(\d+)/.exec(content);
        if (slow) {
          const aborted = await new Promise<boolean>((res) => {
            const t = setTimeout(() => res(false), Number(slow[1]));
            opts.signal?.addEventListener('abort', () => {
              clearTimeout(t);
              res(true);
            });
          });
          if (aborted)
            return { ok: false, id: r.id, kind: 'aborted', message: 'aborted', attempts: 1 };
        }
        return {
          ok: true,
          id: r.id,
          text: `${this.prefix}(${content})`,
          finishReason: 'stop',
          usage: { promptTokens: 3, completionTokens: 2 },
          latencyMs: 0,
          costUsd: 0,
          cached: false,
          attempts: 1,
        };
      }),
    );
  }

  async dispose(): Promise<void> {
    this.disposed = true;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}
