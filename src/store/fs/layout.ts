/**
 * The one place that knows the disk layout (see docs/storage.md):
 *
 *   <dataDir>/
 *     index.db, index.db-wal, index.db-shm   SQLite index (WAL mode)
 *     blobs/<alg>/<first 2 hex>/<hex>        committed, verified blobs, named by digest
 *     tmp/<random>.part                      fills in progress (same filesystem: rename is atomic)
 *
 * Nothing outside blobs/ is ever served; a file enters blobs/ only by rename after its
 * digest has been verified.
 */
import { join } from 'node:path';
import { digestAlgorithm, digestHex } from '../../protocol/grammar.js';

export interface Layout {
  root: string;
  indexFile: string;
  blobsDir: string;
  tmpDir: string;
  blobPath(digest: string): string;
}

export function layout(dataDir: string): Layout {
  const blobsDir = join(dataDir, 'blobs');
  return {
    root: dataDir,
    indexFile: join(dataDir, 'index.db'),
    blobsDir,
    tmpDir: join(dataDir, 'tmp'),
    blobPath(digest: string): string {
      const hex = digestHex(digest);
      return join(blobsDir, digestAlgorithm(digest), hex.slice(0, 2), hex);
    },
  };
}

/** Inverse of blobPath for a path relative to blobs/: `sha256/ab/abcd...` -> `sha256:abcd...`. */
export function digestFromRelative(rel: string[]): string | undefined {
  if (rel.length !== 3) return undefined;
  const [alg, prefix, hex] = rel as [string, string, string];
  if (!hex.startsWith(prefix)) return undefined;
  return `${alg}:${hex}`;
}
