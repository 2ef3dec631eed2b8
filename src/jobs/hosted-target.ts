/**
 * Writing a sync job's content into its hosted target (`target: hosted:<repository>`): the
 * job fetched and verified everything through the proxy (the fill path), so here the
 * verified rows are only linked under HOSTED, the way a push links them (putBlob for
 * blobs, putManifest with its references for manifests), children before the index. And
 * the mirror rule: the repository holds exactly the tags the job matched, so any other tag
 * is removed at the end of a run.
 */
import { isValidDigest } from '../protocol/grammar.js';
import { manifestMediaType, parseManifest } from '../protocol/media-types.js';
import type { MetadataStore, RepoRef } from '../store/metadata-store.js';

/** Links manifest `digest` (already stored) and the blobs it references to `dest`. */
export async function linkManifest(meta: MetadataStore, dest: RepoRef, digest: string, now: number): Promise<void> {
  const row = await meta.getManifest(digest);
  if (!row) throw new Error(`manifest ${digest} was fetched but is not in the store`);
  const parsed = parseManifest(row.body, row.mediaType);
  if (!parsed) throw new Error(`manifest ${digest} is not a JSON object`);
  const blobs = parsed.blobs.map((b) => b.digest).filter(isValidDigest);
  for (const b of blobs) {
    const size = await meta.blobSize(b);
    if (size === undefined) throw new Error(`blob ${b} was fetched but is not in the store`);
    await meta.putBlob(b, size, dest, now);
  }
  await meta.putManifest(row, {
    blobs,
    manifests: parsed.manifests.map((m) => m.digest).filter(isValidDigest),
    subject: parsed.subject && isValidDigest(parsed.subject) ? parsed.subject : undefined,
    artifactType: parsed.artifactType !== undefined && manifestMediaType(parsed.artifactType) ? parsed.artifactType : undefined,
  }, dest, now);
}

/** Removes every tag of `dest` not in `keep`; returns the removed tags. */
export async function pruneTags(meta: MetadataStore, dest: RepoRef, keep: ReadonlySet<string>): Promise<string[]> {
  const drop: string[] = [];
  let last = '';
  for (let page = 0; page < 100_000; page++) {
    const tags = await meta.listTags(dest, last, 1000);
    for (const t of tags) if (!keep.has(t)) drop.push(t);
    if (tags.length < 1000) break;
    last = tags[tags.length - 1]!;
  }
  for (const t of drop) await meta.deleteTag(dest, t);
  return drop;
}
