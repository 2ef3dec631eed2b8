/**
 * A counting semaphore: at most `max` tasks at once (per destination registry for blob
 * transfers; over registries for the run). FIFO, so no task starves.
 */
export class Limiter {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly max: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}

/** Runs `fn` over `items` with at most `max` at once; settles every item (no early abort). */
export async function mapLimit<T, R>(items: readonly T[], max: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const limiter = new Limiter(Math.max(1, max));
  return Promise.all(items.map((item, i) => limiter.run(() => fn(item, i))));
}
