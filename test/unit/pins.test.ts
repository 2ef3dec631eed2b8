/** Pins (src/registry/proxy/pins.ts): counted pins, and watches that remember pins released since they began. */
import { describe, expect, it } from 'vitest';
import { Pins } from '../../src/registry/proxy/pins.js';

describe('Pins', () => {
  it('a digest is pinned until its last holder releases it; a release twice counts once', () => {
    const p = new Pins();
    const a = p.pin('d');
    const b = p.pin('d');
    a();
    a();
    expect(p.has('d')).toBe(true);
    b();
    expect(p.has('d')).toBe(false);
  });

  it('a watch tells a digest pinned at any moment since it began, released or not; not one pinned only before or after it', () => {
    const p = new Pins();
    const before = p.pin('before');
    before();
    const w = p.watch();
    const during = p.pin('during');
    during();
    const held = p.pin('held');
    expect(w.pinned('during')).toBe(true);
    expect(w.pinned('held')).toBe(true);
    expect(w.pinned('before')).toBe(false);
    expect(w.pinned('never')).toBe(false);
    w.end();
    const after = p.pin('after');
    after();
    expect(w.pinned('after')).toBe(false);
    held();
  });

  it('deletion marks count: settled() waits until every deleter of the digest unmarked it', async () => {
    const p = new Pins();
    p.markDeleting('d');
    p.markDeleting('d');
    let done = false;
    const waiting = p.settled('d').then(() => { done = true; });
    p.unmarkDeleting('d');
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(false);
    p.unmarkDeleting('d');
    await waiting;
    expect(done).toBe(true);
    await p.settled('never marked');
  });
});
