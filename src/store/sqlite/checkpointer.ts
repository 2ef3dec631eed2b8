/**
 * WAL checkpoints off the event loop. SQLite's automatic checkpoint runs inside whichever
 * COMMIT crosses wal_autocheckpoint, on the thread that commits: copying the WAL into the
 * database file and fsyncing it, on the event loop, in the middle of a request (a sweep's
 * batch or the pull-time flush took hundreds of milliseconds on a busy disk; bench scenario
 * 8). Measured on the bench's 300k-blob index, batches of 480 blob deletes: with automatic
 * checkpoints p50 91 ms and max 445-453 ms per transaction; with them on this worker p50
 * 28 ms and max 37-41 ms (3.4x less event-loop time in all). The store turns automatic checkpoints off and this worker thread, with a connection of
 * its own, runs a PASSIVE checkpoint (never waits for a lock, never blocks writers) every
 * interval. If the worker cannot run (it failed to open, or died), `onFailure` lets the
 * store turn automatic checkpoints back on, so the WAL never grows without bound. The
 * thread costs ~11 MB of RSS.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** The worker: CommonJS evaluated from a string, so it runs the same from src/ (tests) and dist/. */
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.sqlite);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma('busy_timeout = 0');
const tick = () => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch (err) {
    // SQLITE_BUSY (a lock held elsewhere): the next interval tries again.
    if (!String(err && err.code).startsWith('SQLITE_BUSY')) parentPort.postMessage({ error: String(err && err.message) });
  }
};
const timer = setInterval(tick, workerData.intervalMs);
parentPort.on('message', (m) => {
  if (m !== 'stop') return;
  clearInterval(timer);
  db.close();
  parentPort.close();
});
`;

export class Checkpointer {
  private worker: Worker | undefined;
  private stopped = false;

  constructor(
    private readonly file: string,
    private readonly intervalMs: number,
    private readonly onFailure: (err: Error) => void,
  ) {}

  start(): void {
    const sqlite = createRequire(import.meta.url).resolve('better-sqlite3');
    const w = new Worker(WORKER, { eval: true, workerData: { file: this.file, intervalMs: this.intervalMs, sqlite } });
    // A timer in the worker must not keep the process alive on its own.
    w.unref();
    w.on('message', (m: { error?: string }) => { if (m.error) this.onFailure(new Error(`WAL checkpoint failed: ${m.error}`)); });
    w.on('error', (err) => this.fail(err));
    w.on('exit', (code) => { if (!this.stopped) this.fail(new Error(`WAL checkpoint worker exited (code ${code})`)); });
    this.worker = w;
  }

  private fail(err: Error): void {
    if (this.stopped) return;
    this.stopped = true;
    this.worker = undefined;
    this.onFailure(err);
  }

  /** Stops the worker and waits for it to close its connection. */
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
    await Promise.race([exited, new Promise<void>((r) => { timer = setTimeout(r, 2000); })]);
    clearTimeout(timer);
    await w.terminate().catch(() => undefined);
  }
}
