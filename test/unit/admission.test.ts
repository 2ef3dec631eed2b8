/** Admission of fills into the store: the pure decision as a table, and reservations. */
import { describe, expect, it } from 'vitest';
import { Admission, decideAdmission, decideStart, LOW_WATERMARK, type AdmissionInput } from '../../src/registry/proxy/admission.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const roomy = { free: 100 * GiB, total: 200 * GiB };

describe('decideAdmission', () => {
  const base: AdmissionInput = { size: 10 * MiB, maxSize: 100 * MiB, used: 50 * MiB, reserved: 0, disk: roomy };
  it.each([
    ['fits under maxSize', {}, false, { kind: 'admit' }],
    ['no maxSize', { maxSize: undefined, used: 10 * GiB }, false, { kind: 'admit' }],
    ['size unknown (chunked): only the disk decides', { size: undefined, used: 200 * MiB }, false, { kind: 'admit' }],
    ['larger than maxSize itself', { size: 101 * MiB }, false, { kind: 'refuse', reason: 'larger than maxSize' }],
    ['crosses maxSize: evict to the low watermark less the fill and the reservations', { used: 95 * MiB, reserved: 2 * MiB }, false,
      { kind: 'evict', targetSize: Math.floor(100 * MiB * LOW_WATERMARK) - 10 * MiB - 2 * MiB }],
    ['still over after evicting', { used: 95 * MiB }, true, { kind: 'refuse', reason: 'store full' }],
    ['other fills reserved the room', { used: 50 * MiB, reserved: 45 * MiB }, false, { kind: 'evict', targetSize: Math.floor(100 * MiB * LOW_WATERMARK) - 10 * MiB - 45 * MiB }],
    ['the disk would keep less than its reserve', { maxSize: undefined, disk: { free: 260 * MiB, total: 200 * GiB } }, false, { kind: 'refuse', reason: 'disk reserve' }],
    ['a small filesystem keeps 5% free', { maxSize: undefined, disk: { free: 80 * MiB, total: 1 * GiB } }, false, { kind: 'admit' }],
    ['no disk figures (object store)', { maxSize: undefined, disk: undefined }, false, { kind: 'admit' }],
  ] as const)('%s', (_label, change, evicted, want) => {
    expect(decideAdmission({ ...base, ...change } as AdmissionInput, evicted)).toEqual(want);
  });
});

describe('decideStart', () => {
  const base: AdmissionInput = { size: 10 * MiB, maxSize: 100 * MiB, used: 50 * MiB, reserved: 0, disk: roomy };
  it.each([
    ['fits: no sweep', {}, { kind: 'admit', sweep: false }],
    ['crosses maxSize: admitted at once, a sweep starts', { used: 95 * MiB }, { kind: 'admit', sweep: true }],
    ['reservations of other fills count', { reserved: 45 * MiB }, { kind: 'admit', sweep: true }],
    ['larger than maxSize itself', { size: 101 * MiB }, { kind: 'refuse', reason: 'larger than maxSize' }],
    ['the disk would keep less than its reserve', { disk: { free: 260 * MiB, total: 200 * GiB } }, { kind: 'refuse', reason: 'disk reserve' }],
    ['size unknown (chunked)', { size: undefined, used: 200 * MiB }, { kind: 'admit', sweep: true }],
    ['no maxSize', { maxSize: undefined, used: 10 * GiB }, { kind: 'admit', sweep: false }],
  ] as const)('%s', (_label, change, want) => {
    expect(decideStart({ ...base, ...change } as AdmissionInput)).toEqual(want);
  });
});

/** An eviction that frees `step` bytes per batch, `batches` times, telling progress after each. */
function stepwise(state: { used: number; batches: number }, step: number, batches: number, gate?: () => Promise<void>) {
  return async (target: number, progress: () => void): Promise<void> => {
    state.batches = 0;
    for (let i = 0; i < batches && state.used > target; i++) {
      await (gate ? gate() : new Promise((r) => setTimeout(r, 5)));
      state.used = Math.max(target, state.used - step);
      state.batches++;
      progress();
    }
  };
}

describe('Admission', () => {
  it('admits at once, sweeps in the background, and gives room at commit after the first batch that makes it', async () => {
    const state = { used: 98 * MiB, batches: 0 };
    let sweeps = 0;
    const evict = stepwise(state, 4 * MiB, 10);
    const a = new Admission({
      used: () => state.used, maxSize: () => 100 * MiB, disk: async () => roomy,
      evict: (t, p) => { sweeps++; return evict(t, p); },
    });
    // Two fills crossing the cap at once: both admitted without waiting, one sweep.
    const [r1, r2] = await Promise.all([a.admit(10 * MiB), a.admit(10 * MiB)]);
    expect(r1).toBeDefined();
    expect(r2).toBeDefined();
    expect(sweeps).toBe(1);
    expect(a.reserved).toBe(20 * MiB);
    expect(state.batches).toBeLessThan(2);
    // The first commit needs 98 + 10 (+10 reserved by the other) <= 100: room after 4 batches of 4 MiB, before the sweep ends.
    expect(await r1!.room()).toBe(true);
    expect(state.used + 20 * MiB).toBeLessThanOrEqual(100 * MiB);
    r1!.release();
    r1!.release();
    expect(a.reserved).toBe(10 * MiB);
    expect(await r2!.room()).toBe(true);
    r2!.release();
    expect(a.reserved).toBe(0);
  });

  it('room() answers false when the sweep it started ends without making room, and the fill is not kept', async () => {
    const state = { used: 99 * MiB, batches: 0 };
    const a = new Admission({ used: () => state.used, maxSize: () => 100 * MiB, disk: async () => roomy, evict: stepwise(state, 1 * MiB, 2) });
    const r = await a.admit(50 * MiB);
    expect(r).toBeDefined();
    expect(await r!.room()).toBe(false);
    r!.release();
    expect(a.reserved).toBe(0);
  });

  it('a chunked fill (no size at the start) is checked at commit with the bytes it has', async () => {
    const state = { used: 95 * MiB, batches: 0 };
    const a = new Admission({ used: () => state.used, maxSize: () => 100 * MiB, disk: async () => roomy, evict: stepwise(state, 100 * MiB, 1) });
    const r = await a.admit(undefined);
    expect(r?.bytes).toBe(0);
    expect(await r!.room(8 * MiB)).toBe(true);
    expect(state.used).toBeLessThanOrEqual(92 * MiB);
  });

  it('refuses at the start only what can never be kept: larger than maxSize, or the disk reserve', async () => {
    const a = new Admission({ used: () => 0, maxSize: () => 100 * MiB, disk: async () => ({ free: 300 * MiB, total: 200 * GiB }), evict: async () => undefined });
    expect(await a.admit(101 * MiB)).toBeUndefined();
    expect(await a.admit(50 * MiB)).toBeUndefined();
    expect(a.reserved).toBe(0);
    const r = await a.admit(10 * MiB);
    expect(r).toBeDefined();
  });
});
