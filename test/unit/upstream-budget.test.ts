import { describe, expect, it } from 'vitest';
import { UpstreamBudget, type BudgetClock } from '../../src/jobs/upstream-budget.js';

/** A clock whose sleeps resolve only when the test advances it. */
function manualClock(): BudgetClock & { advance(ms: number): Promise<void>; sleepers: number } {
  let now = 0;
  let sleepers: Array<{ at: number; resolve: () => void }> = [];
  return {
    now: () => now,
    sleep: (ms) => new Promise<void>((resolve) => { sleepers.push({ at: now + ms, resolve }); }),
    get sleepers() { return sleepers.length; },
    async advance(ms) {
      now += ms;
      const due = sleepers.filter((s) => s.at <= now);
      sleepers = sleepers.filter((s) => s.at > now);
      for (const s of due) s.resolve();
      for (let i = 0; i < 10; i++) await Promise.resolve();
    },
  };
}

const tick = async (): Promise<void> => { for (let i = 0; i < 10; i++) await Promise.resolve(); };

describe('UpstreamBudget', () => {
  it('never has more than `concurrency` requests in flight', async () => {
    const b = new UpstreamBudget({ concurrency: 2 }, manualClock());
    let peak = 0;
    const gates: Array<() => void> = [];
    const runs = Array.from({ length: 5 }, () => b.run(async () => {
      peak = Math.max(peak, b.inFlight);
      await new Promise<void>((r) => gates.push(r));
    }));
    await tick();
    expect(gates.length).toBe(2);
    while (gates.length) {
      gates.shift()!();
      await tick();
    }
    await Promise.all(runs);
    expect(peak).toBe(2);
  });

  it('starts at most `perMinute` requests in any minute', async () => {
    const clock = manualClock();
    const b = new UpstreamBudget({ concurrency: 10, perMinute: 3 }, clock);
    let started = 0;
    const runs = Array.from({ length: 7 }, () => b.run(async () => { started++; }));
    await tick();
    expect(started).toBe(3);
    await clock.advance(59_999);
    expect(started).toBe(3);
    await clock.advance(1);
    await tick();
    expect(started).toBe(6);
    await clock.advance(60_000);
    await Promise.all(runs);
    expect(started).toBe(7);
  });

  it('a waiting request leaves when its run is cancelled', async () => {
    const b = new UpstreamBudget({ concurrency: 1 }, manualClock());
    let release!: () => void;
    const first = b.run(() => new Promise<void>((r) => { release = r; }));
    const ac = new AbortController();
    const second = b.run(async () => 'ran', ac.signal);
    ac.abort(new Error('cancelled'));
    await expect(second).rejects.toThrow('cancelled');
    release();
    await first;
    expect(b.inFlight).toBe(0);
    await expect(b.run(async () => 'next')).resolves.toBe('next');
  });
});
