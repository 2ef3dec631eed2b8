/** The eviction batch adapts to what a batch costs on the event loop (src/store/eviction.ts). */
import { describe, expect, it } from 'vitest';
import { nextBatch, restAfter } from '../../src/store/eviction.js';

describe('nextBatch', () => {
  it.each([
    ['a slow batch halves it', 32, 40, 16],
    ['never below 1', 1, 500, 1],
    ['a cheap batch doubles it', 4, 0.5, 8],
    ['never above the maximum', 32, 0.5, 32],
    ['a batch within budget keeps it', 16, 5, 16],
  ])('%s', (_label, current, ms, want) => {
    expect(nextBatch(current, ms, 32)).toBe(want);
  });

  it('a store whose batches cost 40 ms each at 32 units settles where a batch costs at most the budget', () => {
    // Cost proportional to units: 1.25 ms per unit.
    let batch = 32;
    for (let i = 0; i < 10; i++) batch = nextBatch(batch, batch * 1.25, 32);
    expect(batch * 1.25).toBeLessThanOrEqual(8);
    expect(batch).toBeGreaterThanOrEqual(2);
  });
});

describe('restAfter (a paced sweep)', () => {
  it.each([
    ['unpaced: no rest', 12, 1, 0],
    ['half the event loop: rests as long as the batch took', 12, 0.5, 12],
    ['a quarter: rests three times as long', 4, 0.25, 12],
    ['never more than 100 ms', 80, 0.25, 100],
  ])('%s', (_label, spent, pace, want) => {
    expect(restAfter(spent, pace)).toBeCloseTo(want, 6);
  });
});
