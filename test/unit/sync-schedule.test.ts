import { describe, expect, it } from 'vitest';
import { dueAt, retryAt } from '../../src/jobs/schedule.js';

const H = 3_600_000;
const NOW = 100 * H;

describe('sync schedule', () => {
  it.each([
    ['never ran, no startAt: at once', { enabled: true, interval: 24 * H }, undefined, NOW],
    ['never ran, startAt ahead: at startAt', { enabled: true, interval: 24 * H, startAt: NOW + H }, undefined, NOW + H],
    ['never ran, startAt passed: at once', { enabled: true, interval: 24 * H, startAt: NOW - H }, undefined, NOW],
    ['ran: interval after the last start', { enabled: true, interval: 24 * H }, NOW - H, NOW + 23 * H],
    ['ran before a later startAt: at startAt', { enabled: true, interval: H, startAt: NOW + 5 * H }, NOW - 10 * H, NOW + 5 * H],
    ['slot missed while down: at once, once', { enabled: true, interval: H }, NOW - 10 * H, NOW],
    ['disabled: none', { enabled: false, interval: H }, undefined, undefined],
  ] as const)('%s', (_what, job, lastStart, expected) => {
    expect(dueAt(job, lastStart, NOW)).toBe(expected);
  });

  it('retries double their delay and stop when none is left', () => {
    const job = { retries: 3, retryDelay: 60_000 };
    expect([3, 2, 1, 0].map((left) => retryAt(job, left, NOW))).toEqual([NOW + 60_000, NOW + 120_000, NOW + 240_000, undefined]);
  });
});
