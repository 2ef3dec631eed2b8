/**
 * The index worker: a thread with a SQLite connection of its own that does the index work
 * the event loop should not wait for (docs/storage.md, "The index worker").
 *
 * - WAL checkpoints. SQLite's automatic checkpoint runs inside whichever COMMIT crosses
 *   wal_autocheckpoint, on the thread that commits: copying the WAL into the database file
 *   and fsyncing it, on the event loop, in the middle of a request (a sweep's batch or the
 *   pull-time flush took hundreds of milliseconds on a busy disk; bench scenario 8). The
 *   store turns automatic checkpoints off and the worker runs a PASSIVE checkpoint (never
 *   waits for a lock, never blocks writers) every interval.
 * - Eviction planning and removal, and the batched last-pull times (index-ops.ts), each
 *   operation one transaction, behind the write gate (write-gate.ts) so the main thread's
 *   own writes never meet the worker's lock.
 *
 * If the worker cannot run (it failed to open, or died), `onFailure` lets the store do the
 * same work on the main thread and turn automatic checkpoints back on, so nothing stops and
 * the WAL never grows without bound. The thread costs ~11 MB of RSS.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { oldestFirst } from '../eviction-order.js';
import { indexOps, OPS_SQL, type IndexOps } from './index-ops.js';
import type { WriteGate } from './write-gate.js';
import { HOLDER, WANT, WORKER } from './write-gate.js';

/**
 * The worker: CommonJS evaluated from a string, so it runs the same from src/ (tests) and
 * dist/; index-ops.ts and eviction-order.ts are included by their source.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.sqlite);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma('synchronous = NORMAL');
db.pragma('foreign_keys = OFF');
db.pragma('temp_store = MEMORY');
// No wait for a lock another process holds: the operation fails SQLITE_BUSY at once and the gate
// is free again, so the main thread's healthy() probes the lock itself and sees it held.
db.pragma('busy_timeout = 0');
if (workerData.checkpointMs > 0) db.pragma('wal_autocheckpoint = 0');
const ops = (${indexOps.toString()})(db, workerData.sql, (${oldestFirst.toString()}));
const gate = new Int32Array(workerData.gate);
const HOLDER = ${HOLDER}, WANT = ${WANT}, WORKER = ${WORKER};
async function enter() {
  for (;;) {
    const want = Atomics.load(gate, WANT);
    if (want !== 0) {
      // A main-thread write waits: it goes first.
      const r = Atomics.waitAsync(gate, WANT, want, 50);
      if (r.async) await r.value;
      continue;
    }
    if (Atomics.compareExchange(gate, HOLDER, 0, WORKER) === 0) return;
    // The main thread holds it for one synchronous write.
    const holder = Atomics.load(gate, HOLDER);
    if (holder !== 0) Atomics.wait(gate, HOLDER, holder, 5);
  }
}
function leave() {
  Atomics.store(gate, HOLDER, 0);
  Atomics.notify(gate, HOLDER);
  if (Atomics.load(gate, WANT) !== 0) parentPort.postMessage({ free: true });
}
const WRITES = new Set(['removeImages', 'removeBlobs', 'writeTouches']);
const tick = () => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch (err) {
    // SQLITE_BUSY (a lock held elsewhere): the next interval tries again.
    if (!String(err && err.code).startsWith('SQLITE_BUSY')) parentPort.postMessage({ checkpointError: String(err && err.message) });
  }
};
const timer = workerData.checkpointMs > 0 ? setInterval(tick, workerData.checkpointMs) : undefined;
let queue = Promise.resolve();
parentPort.on('message', (m) => {
  if (m === 'stop') {
    if (timer) clearInterval(timer);
    queue.then(() => {
      db.close();
      parentPort.close();
    });
    return;
  }
  queue = queue.then(async () => {
    const write = WRITES.has(m.op);
    if (write) await enter();
    let reply;
    try {
      reply = { id: m.id, result: ops[m.op](...m.args) };
    } catch (err) {
      reply = { id: m.id, error: { message: String(err && err.message), code: err && err.code } };
    } finally {
      // Left before the reply: the main thread's next write after it finds the gate free.
      if (write) leave();
    }
    parentPort.postMessage(reply);
  });
});
`;

export interface IndexWorkerOptions {
  /** PASSIVE checkpoint interval; 0: none (SQLite's automatic checkpoints stay on). */
  checkpointMs: number;
  gate: WriteGate;
  /** The worker failed to start or died, or a checkpoint failed (`fatal` false). */
  onFailure(err: Error, fatal: boolean): void;
}

interface Pending {
  resolve(v: unknown): void;
  reject(err: Error): void;
}

type Reply = { id: number; result?: unknown; error?: { message: string; code?: string } } | { free: true } | { checkpointError: string };

export class IndexWorker {
  private worker: Worker | undefined;
  private stopped = false;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly file: string, private readonly opts: IndexWorkerOptions) {}

  /** True while operations go to the thread. */
  get alive(): boolean {
    return this.worker !== undefined;
  }

  start(): void {
    const sqlite = createRequire(import.meta.url).resolve('better-sqlite3');
    const w = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { file: this.file, sqlite, sql: OPS_SQL, gate: this.opts.gate.buffer, checkpointMs: this.opts.checkpointMs },
    });
    // Idle, the thread (its checkpoint timer) must not keep the process alive; it is referenced while a call waits.
    w.unref();
    w.on('message', (m: Reply) => this.onMessage(m));
    w.on('error', (err) => this.fail(err));
    w.on('exit', (code) => { if (!this.stopped) this.fail(new Error(`index worker exited (code ${code})`)); });
    this.worker = w;
  }

  private onMessage(m: Reply): void {
    if ('free' in m) {
      this.opts.gate.released();
      return;
    }
    if ('checkpointError' in m) {
      this.opts.onFailure(new Error(`WAL checkpoint failed: ${m.checkpointError}`), false);
      return;
    }
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if (this.pending.size === 0) this.worker?.unref();
    if (m.error) p.reject(Object.assign(new Error(m.error.message), m.error.code ? { code: m.error.code } : {}));
    else p.resolve(m.result);
  }

  /** Runs one operation on the thread. */
  call<K extends keyof IndexOps>(op: K, ...args: Parameters<IndexOps[K]>): Promise<ReturnType<IndexOps[K]>> {
    const w = this.worker;
    if (!w) return Promise.reject(Object.assign(new Error('index worker is not running'), { code: 'INDEX_WORKER_GONE' }));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      w.ref();
      w.postMessage({ id, op, args });
    });
  }

  private fail(err: Error): void {
    if (this.stopped) return;
    this.stopped = true;
    this.worker = undefined;
    this.settleAll(err);
    this.opts.gate.reset();
    this.opts.onFailure(err, true);
  }

  private settleAll(cause: Error): void {
    for (const p of this.pending.values()) p.reject(Object.assign(new Error(`index worker stopped: ${cause.message}`), { code: 'INDEX_WORKER_GONE' }));
    this.pending.clear();
  }

  /** Lets the calls in progress finish, stops the thread and waits for it to close its connection. */
  async stop(): Promise<void> {
    const w = this.worker;
    this.stopped = true;
    this.worker = undefined;
    if (!w) return;
    // Referenced while we wait: an unref'd worker and timer would let the event loop run empty
    // and the process exit in the middle of a shutdown (losing its exit code and last log line).
    w.ref();
    const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    w.postMessage('stop');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise<void>((r) => { timer = setTimeout(r, 5000); })]);
    clearTimeout(timer);
    await w.terminate().catch(() => undefined);
    this.settleAll(new Error('stopped'));
    this.opts.gate.reset();
  }
}
