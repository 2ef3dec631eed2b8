/** Shared setup of the offline store commands (gc, fsck): config and the two stores. */
import { loadConfigFile } from '../config/load.js';
import type { Config } from '../config/types.js';
import { FsBlobStore } from '../store/fs/fs-blob-store.js';
import { SqliteMetadataStore } from '../store/sqlite/sqlite-metadata-store.js';
import { applyOverrides } from './serve.js';
import { configPath, type ParsedArgs, type CliIo } from './args.js';

export interface OpenStore {
  config: Config;
  blobs: FsBlobStore;
  meta: SqliteMetadataStore;
}

export async function openStore(args: ParsedArgs, io: CliIo): Promise<OpenStore> {
  const config = applyOverrides(loadConfigFile(configPath(args.flags, io.env), io.env), args.flags, io.env);
  const blobs = new FsBlobStore(config.dataDir);
  const meta = new SqliteMetadataStore(blobs.layout.indexFile);
  await meta.init();
  return { config, blobs, meta };
}
