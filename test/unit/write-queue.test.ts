/** The index write queue (store/sqlite/write-queue.ts): order, lock vs other errors, bound; with the write gate (write-gate.ts). */
import { describe, expect, it } from 'vitest';
import { HOLDER, WANT, WORKER, WriteGate } from '../../src/store/sqlite/write-gate.js';
import { WriteQueue } from '../../src/store/sqlite/write-queue.js';

function fakeDb() {
  const db = { locked: false, rows: [] as string[] };
  const write = (row: string) => ({
    what: row,
    apply: () => {
      if (db.locked) throw Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });
      db.rows.push(row);
    },
  });
  return { db, write };
}

describe('WriteQueue', () => {
  it('writes at once when free; queues while locked, in order, and writes them when the lock goes', () => {
    const { db, write } = fakeDb();
    const q = new WriteQueue({ retryMs: 60_000 });
    expect(q.submit(write('a'))).toBe('written');
    db.locked = true;
    expect(q.submit(write('b'))).toBe('queued');
    db.locked = false;
    // Earlier writes still wait: a new one queues behind them, never overtakes.
    expect(q.submit(write('c'))).toBe('queued');
    expect(db.rows).toEqual(['a']);
    expect(q.drain()).toBe(true);
    expect(db.rows).toEqual(['a', 'b', 'c']);
    expect(q.blocked).toBe(false);
    void q.close(0);
  });

  it('throws other errors to the caller on the first try; drops and reports them later', () => {
    const q = new WriteQueue({ retryMs: 60_000, onDropped: (what) => dropped.push(what) });
    const dropped: string[] = [];
    const full = { what: 'full', apply: () => { throw Object.assign(new Error('disk full'), { code: 'SQLITE_FULL' }); } };
    expect(() => q.submit(full)).toThrow('disk full');
    const { db, write } = fakeDb();
    db.locked = true;
    q.submit(write('x'));
    q.submit(full);
    db.locked = false;
    expect(q.drain()).toBe(true);
    expect(db.rows).toEqual(['x']);
    expect(dropped).toEqual(['full']);
    void q.close(0);
  });

  it('settles each queued write once: applied, dropped with its error, or left at close', async () => {
    const { db, write } = fakeDb();
    const q = new WriteQueue({ retryMs: 60_000, onDropped: () => undefined });
    const settled: Array<[string, string | undefined]> = [];
    const tracked = (w: { what: string; apply(): void }) => ({ ...w, settle: (err?: Error) => settled.push([w.what, err?.message]) });
    db.locked = true;
    q.submit(tracked(write('a')));
    q.submit(tracked({ what: 'bad', apply: () => { if (db.locked) throw Object.assign(new Error('busy'), { code: 'SQLITE_BUSY' }); throw new Error('disk full'); } }));
    q.submit(tracked(write('b')));
    expect(q.drain()).toBe(false);
    expect(settled).toEqual([]);
    db.locked = false;
    expect(q.drain()).toBe(true);
    expect(settled).toEqual([['a', undefined], ['bad', 'disk full'], ['b', undefined]]);
    db.locked = true;
    q.submit(tracked(write('c')));
    const left = await q.close(0);
    expect(left.map((w) => w.what)).toEqual(['c']);
    expect(settled.at(-1)?.[0]).toBe('c');
    expect(settled.at(-1)?.[1]).toMatch(/not written/);
    expect(settled).toHaveLength(4);
  });

  it('holds at most maxQueued writes; beyond, a write fails (not kept) instead of growing memory', () => {
    const { db, write } = fakeDb();
    const q = new WriteQueue({ retryMs: 60_000, maxQueued: 2 });
    db.locked = true;
    q.submit(write('1'));
    q.submit(write('2'));
    expect(() => q.submit(write('3'))).toThrow(/already wait/);
    void q.close(0);
  });

  it('a write that finds the gate held by the index worker waits in memory, is not "blocked", and lands when the worker leaves', () => {
    const { db, write } = fakeDb();
    let q!: WriteQueue;
    const gate = new WriteGate(() => q.kick());
    q = new WriteQueue({ retryMs: 60_000, gate });
    const word = new Int32Array(gate.buffer);
    // The worker is in a transaction.
    Atomics.store(word, HOLDER, WORKER);
    expect(gate.heldByWorker).toBe(true);
    expect(q.submit(write('a'))).toBe('queued');
    expect(q.submit(write('b'))).toBe('queued');
    expect(db.rows).toEqual([]);
    // Not another process's lock: the store stays healthy, status shows nothing blocked.
    expect(q.blocked).toBe(false);
    expect(q.blockedSince).toBeUndefined();
    // The main thread said it waits: the worker will not enter again before it has written.
    expect(Atomics.load(word, WANT)).toBe(1);
    // The worker leaves and, seeing WANT, says so: the writes land at once, in order.
    Atomics.store(word, HOLDER, 0);
    gate.released();
    expect(db.rows).toEqual(['a', 'b']);
    expect(q.size).toBe(0);
    expect(Atomics.load(word, WANT)).toBe(0);
    expect(Atomics.load(word, HOLDER)).toBe(0);
    void q.close(0);
  });

  it('a lock held by another process behind the gate is "blocked" as before; the gate is never left held', () => {
    const { db, write } = fakeDb();
    const gate = new WriteGate();
    const q = new WriteQueue({ retryMs: 60_000, gate });
    db.locked = true;
    expect(q.submit(write('a'))).toBe('queued');
    expect(q.blocked).toBe(true);
    expect(q.blockedSince).toBeTypeOf('number');
    expect(gate.tryEnter()).toBe(true);
    gate.leave();
    expect(q.drain()).toBe(false);
    expect(gate.tryEnter()).toBe(true);
    gate.leave();
    db.locked = false;
    expect(q.drain()).toBe(true);
    expect(db.rows).toEqual(['a']);
    expect(q.blocked).toBe(false);
    void q.close(0);
  });
});
