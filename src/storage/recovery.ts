/**
 * Brings the store and the index back into agreement (at start and for `regcache fsck`):
 *  - temp files of earlier runs are removed (a fill never survives a restart);
 *  - index rows whose blob file is missing are dropped;
 *  - files in blobs/ with no index row are hashed: adopted when the name matches the
 *    content, removed otherwise (also files whose size disagrees with their row).
 * Only verified, complete content is left to serve.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { digestAlgorithm, isValidDigest } from '../protocol/grammar.js';
import type { IndexDb } from './index-db.js';
import { digestFromRelative, type Layout } from './layout.js';

export interface RecoveryReport {
  tempFilesRemoved: number;
  missingBlobRowsDropped: number;
  orphansAdopted: number;
  orphansRemoved: number;
  sizeMismatchesRemoved: number;
  strayFilesRemoved: number;
}

export async function hashFile(path: string, digest: string): Promise<string> {
  const alg = digestAlgorithm(digest);
  const h = createHash(alg);
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) h.update(chunk as Buffer);
  return `${alg}:${h.digest('hex')}`;
}

async function list(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

/** With repair=false only reports what it would do. */
export async function recover(layout: Layout, index: IndexDb, opts: { repair: boolean; isPinned?: (d: string) => boolean }): Promise<RecoveryReport> {
  const report: RecoveryReport = { tempFilesRemoved: 0, missingBlobRowsDropped: 0, orphansAdopted: 0, orphansRemoved: 0, sizeMismatchesRemoved: 0, strayFilesRemoved: 0 };
  for (const f of await list(layout.tmpDir)) {
    report.tempFilesRemoved++;
    if (opts.repair) await rm(join(layout.tmpDir, f), { force: true, recursive: true });
  }

  const rows = new Map<string, number>();
  for (const r of index.db.prepare('SELECT digest, size FROM blobs').iterate() as Iterable<{ digest: string; size: number }>) rows.set(r.digest, r.size);

  const seen = new Set<string>();
  for (const alg of await list(layout.blobsDir)) {
    for (const prefix of await list(join(layout.blobsDir, alg))) {
      for (const name of await list(join(layout.blobsDir, alg, prefix))) {
        const path = join(layout.blobsDir, alg, prefix, name);
        const digest = digestFromRelative([alg, prefix, name]);
        if (!digest || !isValidDigest(digest)) {
          report.strayFilesRemoved++;
          if (opts.repair) await rm(path, { force: true, recursive: true });
          continue;
        }
        if (opts.isPinned?.(digest)) { seen.add(digest); continue; }
        const size = (await stat(path)).size;
        const rowSize = rows.get(digest);
        if (rowSize !== undefined) {
          seen.add(digest);
          if (rowSize !== size) {
            report.sizeMismatchesRemoved++;
            if (opts.repair) {
              index.db.prepare('DELETE FROM blobs WHERE digest = ?').run(digest);
              await rm(path, { force: true });
            }
          }
          continue;
        }
        if ((await hashFile(path, digest)) === digest) {
          report.orphansAdopted++;
          seen.add(digest);
          if (opts.repair) {
            const now = Date.now();
            index.db.prepare('INSERT OR IGNORE INTO blobs (digest, size, created_at, last_pulled_at) VALUES (?, ?, ?, ?)').run(digest, size, now, now);
          }
        } else {
          report.orphansRemoved++;
          if (opts.repair) await rm(path, { force: true });
        }
      }
    }
  }
  const del = index.db.prepare('DELETE FROM blobs WHERE digest = ?');
  for (const digest of rows.keys()) {
    if (seen.has(digest)) continue;
    report.missingBlobRowsDropped++;
    if (opts.repair) del.run(digest);
  }
  return report;
}
