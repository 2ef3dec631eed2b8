/** Retention deletes on shared stores wait a grace period and give way to a fill or a new row. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { GraceDeletes } from '../../src/replicas/grace-deletes.js';

describe('GraceDeletes', () => {
  beforeEach(() => { vi.useFakeTimers(); });
  afterEach(() => { vi.useRealTimers(); });

  function make(o: { heldElsewhere?: Set<string>; rows?: Set<string> } = {}) {
    const deleted: string[] = [];
    const released: string[] = [];
    const g = new GraceDeletes({
      graceMs: 60_000,
      claim: async (d) => !(o.heldElsewhere?.has(d) ?? false),
      release: (d) => { released.push(d); },
      hasRow: async (d) => o.rows?.has(d) ?? false,
      deleteNow: async (d) => { deleted.push(d); },
      onError: () => undefined,
    });
    return { g, deleted, released };
  }

  it('deletes only after the grace period, once per digest, under the fill lease', async () => {
    const { g, deleted, released } = make();
    await g.delete('sha256:a');
    await g.delete('sha256:a');
    await vi.advanceTimersByTimeAsync(59_000);
    expect(deleted).toEqual([]);
    expect(g.pending).toBe(1);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(deleted).toEqual(['sha256:a']);
    expect(released).toEqual(['sha256:a']);
    expect(g.pending).toBe(0);
  });

  it('keeps the object when a replica is filling it or a row names it again', async () => {
    const { g, deleted, released } = make({ heldElsewhere: new Set(['sha256:filling']), rows: new Set(['sha256:back']) });
    await g.delete('sha256:filling');
    await g.delete('sha256:back');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(deleted).toEqual([]);
    expect(released).toEqual(['sha256:back']);
  });

  it('stop drops pending deletes', async () => {
    const { g, deleted } = make();
    await g.delete('sha256:a');
    g.stop();
    await vi.advanceTimersByTimeAsync(120_000);
    expect(deleted).toEqual([]);
  });
});
