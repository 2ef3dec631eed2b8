/**
 * Brings the blob store and the metadata store back into agreement (at start and for
 * `regcache fsck`):
 *  - spools of earlier runs are removed (a fill never survives a restart), except those of
 *    upload sessions recorded in the metadata store (a chunked push resumes after a restart);
 *  - blob rows whose bytes are missing are dropped;
 *  - blobs with no row are hashed: adopted when the name matches the content, removed
 *    otherwise (also blobs whose size disagrees with their row);
 *  - stray entries in the blob area are removed.
 * Only verified, complete content is left to serve. Works through the two store
 * interfaces only; with repair=false it only reports.
 */
import type { BlobStore } from './blob-store.js';
import { UPLOAD_STATE, type MetadataStore, type UploadSessionState } from './metadata-store.js';

export interface RecoveryReport {
  tempFilesRemoved: number;
  missingBlobRowsDropped: number;
  orphansAdopted: number;
  orphansRemoved: number;
  sizeMismatchesRemoved: number;
  strayFilesRemoved: number;
}

export interface RecoveryOptions {
  repair: boolean;
  /** Digests in use by a running server: never touched. */
  isPinned?: (digest: string) => boolean;
  /** Spools in use by a running server (read-only fsck next to a live serve): not leftovers. */
  skipSpools?: boolean;
  now?: () => number;
}

export async function recover(blobs: BlobStore, meta: MetadataStore, opts: RecoveryOptions): Promise<RecoveryReport> {
  const report: RecoveryReport = { tempFilesRemoved: 0, missingBlobRowsDropped: 0, orphansAdopted: 0, orphansRemoved: 0, sizeMismatchesRemoved: 0, strayFilesRemoved: 0 };
  if (!opts.skipSpools) {
    const sessions = new Set((await meta.listState<UploadSessionState>(UPLOAD_STATE)).map((s) => s.value.spool));
    for (const name of await blobs.listSpools()) {
      if (sessions.has(name)) continue;
      report.tempFilesRemoved++;
      if (opts.repair) await blobs.removeSpool(name);
    }
  }
  for (const path of await blobs.listStray()) {
    report.strayFilesRemoved++;
    if (opts.repair) await blobs.removeStray(path);
  }

  const rows = new Map<string, number>();
  for await (const r of meta.listBlobs()) rows.set(r.digest, r.size);
  const seen = new Set<string>();
  const drop: string[] = [];
  for await (const { digest, size } of blobs.list()) {
    if (opts.isPinned?.(digest)) {
      seen.add(digest);
      continue;
    }
    const rowSize = rows.get(digest);
    if (rowSize !== undefined) {
      seen.add(digest);
      if (rowSize !== size) {
        report.sizeMismatchesRemoved++;
        if (opts.repair) {
          drop.push(digest);
          await blobs.delete(digest);
        }
      }
      continue;
    }
    if ((await blobs.hash(digest)) === digest) {
      report.orphansAdopted++;
      seen.add(digest);
      if (opts.repair) await meta.putBlob(digest, size, undefined, (opts.now ?? Date.now)());
    } else {
      report.orphansRemoved++;
      if (opts.repair) await blobs.delete(digest);
    }
  }
  for (const digest of rows.keys()) {
    if (seen.has(digest)) continue;
    report.missingBlobRowsDropped++;
    if (opts.repair) drop.push(digest);
  }
  if (opts.repair) await meta.dropBlobs(drop);
  return report;
}
