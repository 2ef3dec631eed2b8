/** Shared setup of the offline store commands (gc, fsck): config, data-dir lock, layout, index. */
import type { Config } from '../config/types.js';
import { acquireDataDirLock, type DataDirLock } from '../storage/data-dir-lock.js';
import { IndexDb } from '../storage/index-db.js';
import { layout, type Layout } from '../storage/layout.js';
import type { ParsedArgs, CliIo } from './args.js';
import { loadCommandConfig } from './overrides.js';

export interface OpenStore {
  config: Config;
  layout: Layout;
  index: IndexDb;
  /** Closes the index, then drops the lock if one was taken. */
  close(): void;
}

/**
 * Opens the store of the command's config. With `lockFor` (a command that changes the
 * store) the data directory's lock is taken first, so a running serve is never changed
 * under its feet: it throws DataDirLockedError naming the serve's PID.
 */
export function openStore(args: ParsedArgs, io: CliIo, lockFor?: string): OpenStore {
  const { config } = loadCommandConfig(args.flags, io.env);
  const lock: DataDirLock | undefined = lockFor === undefined ? undefined : acquireDataDirLock(config.dataDir, lockFor);
  const lay = layout(config.dataDir);
  let index: IndexDb;
  try {
    index = new IndexDb(lay.indexFile);
  } catch (err) {
    lock?.release();
    throw err;
  }
  return {
    config, layout: lay, index,
    close(): void {
      index.close();
      lock?.release();
    },
  };
}
