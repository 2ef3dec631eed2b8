/** Shared setup of the offline store commands (gc, fsck): config, layout, index. */
import { loadConfigFile } from '../config/load.js';
import type { Config } from '../config/types.js';
import { IndexDb } from '../storage/index-db.js';
import { layout, type Layout } from '../storage/layout.js';
import { applyOverrides } from './serve.js';
import { configPath, type ParsedArgs, type CliIo } from './args.js';

export interface OpenStore {
  config: Config;
  layout: Layout;
  index: IndexDb;
}

export function openStore(args: ParsedArgs, io: CliIo): OpenStore {
  const config = applyOverrides(loadConfigFile(configPath(args.flags, io.env), io.env), args.flags, io.env);
  const lay = layout(config.dataDir);
  return { config, layout: lay, index: new IndexDb(lay.indexFile) };
}
