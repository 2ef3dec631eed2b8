/**
 * Start-up check that the data directory can be written by the user regcache runs as.
 * Without it a non-root serve on a root-owned directory starts "fine" and then answers
 * /readyz 503, warns on every request and fails at shutdown; one line at start that names
 * the directory, the user and the uid:gid to chown to is what an operator can act on.
 */
import { accessSync, constants, existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

export class DataDirError extends Error {
  override name = 'DataDirError';
}

/** Paths inside the data directory regcache writes to (when they exist): directories, then files. */
const DIRS = ['', 'tmp', 'blobs'];
const FILES = ['index.db', 'index.db-wal', 'index.db-shm', 'regcache.lock', 'regcache.pid'];

export interface RunAs {
  uid: number;
  gid: number;
  username: string;
}


/**
 * Creates the directory if missing, then checks that every path regcache writes in it is
 * writable. Throws DataDirError with one line:
 * `data directory /data is not writable by user node (uid 1000): /data/tmp: EACCES; fix with: chown -R 1000:1000 /data`.
 */
export function checkDataDirWritable(dataDir: string, user: RunAs): void {
  const dir = resolve(dataDir);
  const fail = (path: string, err: unknown): never => {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new DataDirError(
      `data directory ${dir} is not writable by user ${user.username} (uid ${user.uid}): ${path}: ${code}; ` +
      `fix with: chown -R ${user.uid}:${user.gid} ${dir} (or run as its owner)`,
    );
  };
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    fail(dir, err);
  }
  for (const rel of [...DIRS, ...FILES]) {
    const path = rel === '' ? dir : join(dir, rel);
    if (!existsSync(path)) continue;
    try {
      // A directory needs search (x) as well as write permission to create files in it.
      accessSync(path, DIRS.includes(rel) ? constants.W_OK | constants.X_OK : constants.W_OK);
    } catch (err) {
      fail(path, err);
    }
  }
}
