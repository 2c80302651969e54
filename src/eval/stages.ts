// Where an evaluation's time goes, by stage: refine (the refiner's calls), generate (the
// generator's calls), rewards (the text metrics) and sandbox (the tests). A stage's time is its
// busy wall time: while at least one of its operations is in flight, overlapping operations of
// the same stage counted once. In a sequential evaluation the stages never overlap, so their
// times add up to (almost) the whole; in a pipelined one they overlap each other, and the sum
// exceeds the wall time by what the overlap saved. Model loading is part of the first call's
// stage (the models load lazily).
import { CompositeReward } from '../rewards/index.js';
import type { RewardFn } from '../rewards/index.js';

export const STAGES = ['refine', 'generate', 'rewards', 'sandbox'] as const;
export type Stage = (typeof STAGES)[number];
export type StageTimes = Record<Stage, number>;

const zeros = (): StageTimes => ({ refine: 0, generate: 0, rewards: 0, sandbox: 0 });

export class StageClock {
  private readonly active = zeros();
  private readonly since = zeros();
  private readonly total = zeros();

  /** Marks an operation of `stage` as started; the returned function ends it (once). */
  begin(stage: Stage): () => void {
    if (this.active[stage]++ === 0) this.since[stage] = performance.now();
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      if (--this.active[stage] === 0) this.total[stage] += performance.now() - this.since[stage];
    };
  }

  async time<T>(stage: Stage, f: () => Promise<T>): Promise<T> {
    const end = this.begin(stage);
    try {
      return await f();
    } finally {
      end();
    }
  }

  /** Busy seconds per stage so far (operations still in flight count up to now). */
  seconds(): StageTimes {
    const now = performance.now();
    const out = zeros();
    for (const s of STAGES)
      out[s] = (this.total[s] + (this.active[s] > 0 ? now - this.since[s] : 0)) / 1000;
    return out;
  }
}

/**
 * The same composite reward with each part timed: the execution reward ('exec') as the sandbox
 * stage, every other part (the text metrics) as the rewards stage. Values are untouched.
 */
export function timedReward(r: CompositeReward, clock: StageClock): CompositeReward {
  const timed = (fn: RewardFn): RewardFn => {
    const stage: Stage = fn.name === 'exec' ? 'sandbox' : 'rewards';
    return {
      name: fn.name,
      score: (batch) => clock.time(stage, async () => fn.score(batch)),
    };
  };
  return new CompositeReward(
    r.parts.map((p) => ({ fn: timed(p.fn), weight: p.weight })),
    { nullPolicy: r.policy },
  );
}
