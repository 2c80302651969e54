// The local engine's decode queue: requests of concurrent generate() calls (the HTTP requests of
// `rl4qe serve`, a trainer's parallel batches) wait here and decode together. Each round takes the
// oldest request and up to maxBatchSize − 1 more with the same key (the sampling parameters one
// decode call shares), in arrival order. Between rounds the event loop runs (new requests join,
// timers and HTTP handlers run) and aborted requests leave the queue without being decoded.

/** What the queue needs of a queued request. */
export interface Batchable {
  /** Requests with equal keys may decode in one call. */
  key: string;
  signal?: AbortSignal;
}

export interface BatchQueueOptions<T extends Batchable> {
  maxBatchSize: number;
  /**
   * How long a round waits for more requests when the next batch is not full (default 0: not at
   * all). A server's concurrent requests reach the queue a few ms apart (and a request's next
   * stage only after the previous batch's answers went out), so without a wait the first of
   * them decodes alone and the rest wait a whole batch for it.
   */
  batchWaitMs?: number;
  /** Decodes one batch (synchronously) and answers every request in it. Must not throw. */
  run: (batch: T[]) => void;
  /** Answers a request that leaves the queue undecoded: its caller aborted, or the queue closed. */
  drop: (item: T, why: 'aborted' | 'closed') => void;
  /** Answers the requests still queued when `run` threw after all (not expected). */
  crash: (item: T, error: unknown) => void;
}

export class BatchQueue<T extends Batchable> {
  private queue: T[] = [];
  private pumping = false;
  private closed = false;
  private readonly counts = { batches: 0, sequences: 0 };
  /** Wakes a waiting round early, once a full batch is queued. */
  private wake: (() => void) | undefined;

  constructor(private readonly opts: BatchQueueOptions<T>) {}

  /** Queues requests; they are answered through the options' callbacks. */
  push(items: readonly T[]): void {
    if (this.closed) {
      for (const q of items) this.opts.drop(q, 'closed');
      return;
    }
    this.queue.push(...items);
    if (this.wake && this.fullBatchQueued()) this.wake();
    if (!this.pumping) void this.pump();
  }

  /** Drops everything not yet decoding (before the next round); later pushes are dropped at once. */
  close(): void {
    this.closed = true;
  }

  /** Batches run so far and sequences decoded in them. */
  stats(): { batches: number; sequences: number } {
    return { ...this.counts };
  }

  private fullBatchQueued(): boolean {
    const first = this.queue[0];
    if (first === undefined) return false;
    let n = 0;
    for (const q of this.queue) if (q.key === first.key) n++;
    return n >= this.opts.maxBatchSize;
  }

  /** Resolves after `ms`, or as soon as a full batch is queued. */
  private waitForMore(ms: number): Promise<void> {
    return new Promise<void>((res) => {
      const t = setTimeout(() => {
        this.wake = undefined;
        res();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        this.wake = undefined;
        res();
      };
    });
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    const waitMs = this.opts.batchWaitMs ?? 0;
    try {
      while (this.queue.length > 0) {
        // Let other work run and requests join before choosing the next batch.
        await new Promise<void>((res) => setImmediate(res));
        if (waitMs > 0 && !this.closed && !this.fullBatchQueued()) await this.waitForMore(waitMs);
        const live: T[] = [];
        for (const q of this.queue) {
          if (this.closed) this.opts.drop(q, 'closed');
          else if (q.signal?.aborted) this.opts.drop(q, 'aborted');
          else live.push(q);
        }
        this.queue = [];
        const first = live[0];
        if (first === undefined) break;
        const batch: T[] = [];
        for (const q of live) {
          if (q.key === first.key && batch.length < this.opts.maxBatchSize) batch.push(q);
          else this.queue.push(q);
        }
        this.counts.batches += 1;
        this.counts.sequences += batch.length;
        this.opts.run(batch);
      }
    } catch (e) {
      for (const q of this.queue.splice(0)) this.opts.crash(q, e);
    } finally {
      this.pumping = false;
    }
  }
}
