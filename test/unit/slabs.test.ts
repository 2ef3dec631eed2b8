import { describe, expect, it } from 'vitest';
import { SlabPool } from '../../src/registry/proxy/slabs.js';

describe('slab pool', () => {
  it('a slab comes back only when its last holder releases it, and is then reused empty', () => {
    const pool = new SlabPool(1024, 4);
    const s = pool.take();
    s.buf.fill(7, 0, 10);
    s.filled = 10;
    s.retain(); // a window entry
    s.retain(); // a socket write
    s.release();
    s.release();
    expect(pool.outstanding).toBe(1);
    expect(pool.idle).toBe(0);
    s.onWritten(); // the last holder: a write callback
    expect(pool.outstanding).toBe(0);
    expect(pool.idle).toBe(1);
    const again = pool.take();
    expect(again).toBe(s);
    expect(again.filled).toBe(0);
    expect(again.free).toBe(1024);
  });

  it('a second release, or a retain after the last release, throws instead of handing out a slab in use', () => {
    const pool = new SlabPool(64, 4);
    const s = pool.take();
    s.release();
    expect(() => s.release()).toThrow(/released twice/);
    expect(() => s.retain()).toThrow(/after its release/);
  });

  it('keeps at most maxFree slabs for reuse; the rest are left to the garbage collector', () => {
    const pool = new SlabPool(64, 2);
    const slabs = [pool.take(), pool.take(), pool.take()];
    expect(new Set(slabs).size).toBe(3);
    for (const s of slabs) s.release();
    expect(pool.idle).toBe(2);
    expect(pool.outstanding).toBe(0);
  });
});
