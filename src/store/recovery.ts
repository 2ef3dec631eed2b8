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

/** How a caller follows a long check (the CLI draws it): steps and items done. */
export interface StepProgress {
  /** A step begins; `total` items when known. */
  step(label: string, total?: number): void;
  /** One more item of the current step is done; `detail` names it. */
  tick(detail?: string): void;
}

/** What was wrong with one blob (fsck names it with its tags or repositories). */
export type RecoveryProblem = 'no-file' | 'size-mismatch' | 'orphan-intact' | 'orphan-corrupt';

export interface RecoveryOptions {
  repair: boolean;
  /** Digests in use by a running server: never touched. */
  isPinned?: (digest: string) => boolean;
  /** Spools in use by a running server (read-only fsck next to a live serve): not leftovers. */
  skipSpools?: boolean;
  /** Only remove leftover spools (stores shared with running replicas). */
  spoolsOnly?: boolean;
  now?: () => number;
  progress?: StepProgress;
  /**
   * Told of each blob in trouble before it is repaired, so its names can still be read (not
   * kept in the report: a start's log stays small).
   */
  onFinding?: (problem: RecoveryProblem, digest: string) => void | Promise<void>;
}

export async function recover(blobs: BlobStore, meta: MetadataStore, opts: RecoveryOptions): Promise<RecoveryReport> {
  const report: RecoveryReport = { tempFilesRemoved: 0, missingBlobRowsDropped: 0, orphansAdopted: 0, orphansRemoved: 0, sizeMismatchesRemoved: 0, strayFilesRemoved: 0 };
  const progress = opts.progress;
  const found = async (problem: RecoveryProblem, digest: string): Promise<void> => opts.onFinding?.(problem, digest);
  if (!opts.skipSpools) {
    const sessions = new Set((await meta.listState<UploadSessionState>(UPLOAD_STATE)).map((s) => s.value.spool));
    const spools = (await blobs.listSpools()).filter((name) => !sessions.has(name));
    progress?.step('temp files', spools.length);
    for (const name of spools) {
      report.tempFilesRemoved++;
      if (opts.repair) await blobs.removeSpool(name);
      progress?.tick(name);
    }
  }
  if (opts.spoolsOnly) return report;
  const strays = await blobs.listStray();
  progress?.step('stray files', strays.length);
  for (const path of strays) {
    report.strayFilesRemoved++;
    if (opts.repair) await blobs.removeStray(path);
    progress?.tick(path);
  }

  const rows = new Map<string, number>();
  for await (const r of meta.listBlobs()) rows.set(r.digest, r.size);
  const seen = new Set<string>();
  const drop: string[] = [];
  // The number of files is known only once they are all listed: the rows are the estimate.
  progress?.step('blob files', rows.size);
  for await (const { digest, size } of blobs.list()) {
    progress?.tick(digest);
    if (opts.isPinned?.(digest)) {
      seen.add(digest);
      continue;
    }
    const rowSize = rows.get(digest);
    if (rowSize !== undefined) {
      seen.add(digest);
      if (rowSize !== size) {
        report.sizeMismatchesRemoved++;
        await found('size-mismatch', digest);
        if (opts.repair) {
          drop.push(digest);
          await blobs.delete(digest);
        }
      }
      continue;
    }
    if ((await blobs.hash(digest)) === digest) {
      report.orphansAdopted++;
      await found('orphan-intact', digest);
      seen.add(digest);
      if (opts.repair) await meta.putBlob(digest, size, undefined, (opts.now ?? Date.now)());
    } else {
      report.orphansRemoved++;
      await found('orphan-corrupt', digest);
      if (opts.repair) await blobs.delete(digest);
    }
  }
  for (const digest of rows.keys()) {
    if (seen.has(digest)) continue;
    report.missingBlobRowsDropped++;
    await found('no-file', digest);
    if (opts.repair) drop.push(digest);
  }
  if (opts.repair) await meta.dropBlobs(drop);
  return report;
}
