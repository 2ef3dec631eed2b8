/** Admission of fills into the store: the pure decision as a table, and reservations. */
import { describe, expect, it } from 'vitest';
import { Admission, decideAdmission, LOW_WATERMARK, type AdmissionInput } from '../../src/registry/proxy/admission.js';

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

describe('Admission', () => {
  it('reserves bytes for fills in flight, releases each reservation once, and coalesces evictions', async () => {
    let used = 80 * MiB;
    let evictions = 0;
    const a = new Admission({
      used: () => used,
      maxSize: () => 100 * MiB,
      disk: async () => roomy,
      evict: async (target) => {
        evictions++;
        await new Promise((r) => setTimeout(r, 20));
        used = Math.min(used, target);
      },
    });
    const r1 = await a.admit(15 * MiB);
    expect(r1?.bytes).toBe(15 * MiB);
    expect(a.reserved).toBe(15 * MiB);
    // Two fills that both cross the cap at once: one eviction, both admitted after it.
    const [r2, r3] = await Promise.all([a.admit(10 * MiB), a.admit(10 * MiB)]);
    expect(evictions).toBe(1);
    expect(r2).toBeDefined();
    expect(r3).toBeDefined();
    expect(a.reserved).toBe(35 * MiB);
    r1!.release();
    r1!.release();
    expect(a.reserved).toBe(20 * MiB);
    // Nothing more can go: refused, and its reservation returned.
    used = 100 * MiB;
    const big = new Admission({ used: () => used, maxSize: () => 100 * MiB, disk: async () => roomy, evict: async () => undefined });
    expect(await big.admit(50 * MiB)).toBeUndefined();
    expect(big.reserved).toBe(0);
  });
});
