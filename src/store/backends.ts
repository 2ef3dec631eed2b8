/**
 * Builds the two stores the config asks for: the embedded default (filesystem + SQLite under
 * `dataDir`) or the shared backends several replicas use (an S3 bucket, a PostgreSQL
 * database), in any combination. Spools are always local files under `dataDir`.
 */
import type { Config } from '../config/types.js';
import type { BlobStore } from './blob-store.js';
import { FsBlobStore } from './fs/fs-blob-store.js';
import { layout } from './fs/layout.js';
import type { MetadataStore } from './metadata-store.js';
import { PostgresMetadataStore } from './postgres/postgres-metadata-store.js';
import { S3BlobStore } from './s3/s3-blob-store.js';
import { SqliteMetadataStore } from './sqlite/sqlite-metadata-store.js';

export interface Stores {
  blobs: BlobStore;
  meta: MetadataStore;
  /** True when other processes may write the same stores (start-up recovery stays local). */
  shared: boolean;
}

export function createStores(config: Config, onError: (err: Error) => void): Stores {
  const dirs = layout(config.dataDir);
  const st = config.storage;
  const blobs: BlobStore = st.blobs === 's3'
    ? new S3BlobStore({
      bucket: st.s3Bucket!, prefix: st.s3Prefix ?? '', endpoint: st.s3Endpoint, region: st.s3Region, forcePathStyle: st.s3ForcePathStyle,
      spoolDir: dirs.tmpDir,
    })
    : new FsBlobStore(config.dataDir);
  const meta: MetadataStore = st.metadata === 'postgres'
    ? new PostgresMetadataStore({ url: st.postgresUrl, onError })
    : new SqliteMetadataStore(dirs.indexFile, { onError });
  return { blobs, meta, shared: st.blobs === 's3' || st.metadata === 'postgres' };
}
