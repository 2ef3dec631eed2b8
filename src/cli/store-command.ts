/** Shared setup of the offline store commands (gc, fsck): config, data-dir lock, the two stores. */
import type { Config } from '../config/types.js';
import { acquireDataDirLock, type DataDirLock } from '../store/fs/data-dir-lock.js';
import { FsBlobStore } from '../store/fs/fs-blob-store.js';
import { SqliteMetadataStore } from '../store/sqlite/sqlite-metadata-store.js';
import type { ParsedArgs, CliIo } from './args.js';
import { loadCommandConfig } from './overrides.js';

export interface OpenStore {
  config: Config;
  blobs: FsBlobStore;
  meta: SqliteMetadataStore;
  /** Whether this command holds the data directory's lock (else a serve may be running). */
  locked: boolean;
  /** Closes the metadata store, then drops the lock if one was taken. */
  close(): Promise<void>;
}

/**
 * Opens the stores of the command's config. With `lockFor` (a command that changes the
 * store) the data directory's lock is taken first, so a running serve is never changed
 * under its feet: it throws DataDirLockedError naming the serve's PID.
 */
export async function openStore(args: ParsedArgs, io: CliIo, lockFor?: string): Promise<OpenStore> {
  const { config } = loadCommandConfig(args.flags, io.env);
  const lock: DataDirLock | undefined = lockFor === undefined ? undefined : acquireDataDirLock(config.dataDir, lockFor, process.pid);
  const blobs = new FsBlobStore(config.dataDir);
  // A short command: SQLite's own checkpoints, no worker thread (sqlite/index-worker.ts is for serve).
  const meta = new SqliteMetadataStore(blobs.layout.indexFile, { checkpointMs: 0 });
  try {
    await meta.init();
  } catch (err) {
    lock?.release();
    throw err;
  }
  return {
    config, blobs, meta, locked: lock !== undefined,
    async close(): Promise<void> {
      await meta.close();
      lock?.release();
    },
  };
}
