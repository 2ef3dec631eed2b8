/**
 * One writer per data directory. `serve`, `gc` and `fsck --repair` each take the lock before
 * touching the store, so a second one cannot delete the first one's in-flight temp files
 * (start-up recovery and repair remove every file in tmp/).
 *
 * The lock is an exclusive SQLite lock on `<dataDir>/regcache.lock` (POSIX fcntl locks under
 * the hood, via better-sqlite3 which the index already needs): the kernel drops it when the
 * holder dies, however it dies, so there is no stale lock to clean up after a crash or a
 * container restart, and PID reuse (PID 1 in every container) cannot fool it. The holder's
 * PID and command go into `<dataDir>/regcache.pid` so the one refused can name it.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';

export const LOCK_FILE = 'regcache.lock';
export const HOLDER_FILE = 'regcache.pid';

export interface LockHolder {
  pid: number;
  command: string;
  since: string;
}

export class DataDirLockedError extends Error {
  override name = 'DataDirLockedError';
  constructor(readonly dataDir: string, readonly holder: LockHolder | undefined, wanted: string) {
    super(
      `data directory ${dataDir} is in use by ${holder ? `regcache ${holder.command} (PID ${holder.pid}, since ${holder.since})` : 'another regcache process (PID not yet recorded)'}; ` +
      `${wanted} needs it alone: stop that process first`,
    );
  }
}

export interface DataDirLock {
  readonly dataDir: string;
  /** Drops the lock (also dropped by the kernel when the process exits). Idempotent. */
  release(): void;
}

function readHolder(dataDir: string): LockHolder | undefined {
  try {
    const h = JSON.parse(readFileSync(join(dataDir, HOLDER_FILE), 'utf8')) as Partial<LockHolder>;
    if (typeof h.pid !== 'number' || typeof h.command !== 'string' || typeof h.since !== 'string') return undefined;
    return { pid: h.pid, command: h.command, since: h.since };
  } catch {
    return undefined;
  }
}

function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED';
}

/** Takes the lock for `command` (e.g. "serve", "gc"), or throws DataDirLockedError naming the holder. */
export function acquireDataDirLock(dataDir: string, command: string, pid: number): DataDirLock {
  // timeout 0: a held lock is refused at once, never waited for.
  const db = new Database(join(dataDir, LOCK_FILE), { timeout: 0 });
  try {
    // EXCLUSIVE locking mode keeps the lock from the first write until close.
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE; COMMIT');
  } catch (err) {
    db.close();
    if (isBusy(err)) throw new DataDirLockedError(dataDir, readHolder(dataDir), command);
    throw err;
  }
  const holder: LockHolder = { pid, command, since: new Date().toISOString() };
  writeFileSync(join(dataDir, HOLDER_FILE), JSON.stringify(holder) + '\n');
  let held = true;
  return {
    dataDir,
    release(): void {
      if (!held) return;
      held = false;
      // Removed before the lock goes, so the next holder's refusals never name a dead PID.
      rmSync(join(dataDir, HOLDER_FILE), { force: true });
      db.close();
    },
  };
}

/**
 * The process holding the lock now, or undefined when nobody does. Writes nothing (read-only
 * `fsck` may run as a user who cannot write the directory): a read needs a shared lock,
 * which the holder's exclusive lock refuses.
 */
export function dataDirLockHolder(dataDir: string): LockHolder | undefined {
  let db: Database.Database;
  try {
    db = new Database(join(dataDir, LOCK_FILE), { timeout: 0, readonly: true, fileMustExist: true });
  } catch (err) {
    // No lock file: no serve, gc or repair has ever run on this directory.
    if ((err as { code?: unknown }).code === 'SQLITE_CANTOPEN') return undefined;
    throw err;
  }
  try {
    db.prepare('SELECT count(*) FROM sqlite_master').get();
    return undefined;
  } catch (err) {
    if (isBusy(err)) return readHolder(dataDir) ?? { pid: 0, command: 'unknown', since: '' };
    throw err;
  } finally {
    db.close();
  }
}
