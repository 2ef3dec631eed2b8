/**
 * "Skip mirroring" (issue 11): a hosted repository in front of the proxy repository of the
 * same name under an upstream host (`docker.io/myorg/**`). What was pushed is answered from
 * the hosted repository with no upstream request, so a pushed tag wins over the upstream's;
 * anything it lacks is proxied as before. Writes go to the hosted repository.
 */
import type { Readable } from 'node:stream';
import { OciError } from '../../protocol/errors.js';
import { OCI_INDEX } from '../../protocol/media-types.js';
import type {
  BlobAnswer, BlobGet, ListingAnswer, ManifestAnswer, ManifestGet, Repository, TagsAnswer, UploadAnswer, UploadOp,
} from '../repository.js';
import type { HostedRepository } from './hosted-repository.js';

function isUnknown(err: unknown, code: 'MANIFEST_UNKNOWN' | 'BLOB_UNKNOWN'): boolean {
  return err instanceof OciError && err.code === code;
}

export class OverlayRepository implements Repository {
  readonly kind = 'hosted' as const;

  constructor(readonly hosted: HostedRepository, readonly proxy: Repository) {}

  get name(): Repository['name'] {
    return this.hosted.name;
  }

  async getManifest(reference: string, isDigest: boolean, opts: ManifestGet): Promise<ManifestAnswer> {
    try {
      return await this.hosted.getManifest(reference, isDigest, opts);
    } catch (err) {
      if (!isUnknown(err, 'MANIFEST_UNKNOWN')) throw err;
      return this.proxy.getManifest(reference, isDigest, opts);
    }
  }

  putManifest(reference: string, body: Readable, contentType: string | undefined): Promise<{ digest: string; headers?: Record<string, string> }> {
    return this.hosted.putManifest(reference, body, contentType);
  }

  deleteManifest(reference: string): Promise<void> {
    return this.hosted.deleteManifest(reference);
  }

  async getBlob(digest: string, opts: BlobGet): Promise<BlobAnswer> {
    try {
      return await this.hosted.getBlob(digest, opts);
    } catch (err) {
      if (!isUnknown(err, 'BLOB_UNKNOWN')) throw err;
      return this.proxy.getBlob(digest, opts);
    }
  }

  deleteBlob(digest: string): Promise<void> {
    return this.hosted.deleteBlob(digest);
  }

  upload(op: UploadOp): Promise<UploadAnswer> {
    return this.hosted.upload(op);
  }

  /** The pushed tags and the upstream's, merged in order (the upstream's alone when it fails: the pushed ones). */
  async listTags(n: number | undefined, last: string | undefined): Promise<TagsAnswer> {
    const limit = n ?? 1000;
    const [mine, theirs] = await Promise.all([
      this.hosted.listTags(limit, last),
      this.proxy.listTags(limit, last).catch((): TagsAnswer => ({ tags: [] })),
    ]);
    const merged = [...new Set([...mine.tags, ...theirs.tags])].sort();
    const page = merged.slice(0, limit);
    const more = merged.length > limit || mine.next !== undefined || theirs.next !== undefined;
    return more && page.length > 0 ? { tags: page, next: { n: String(limit), last: page[page.length - 1]! } } : { tags: page };
  }

  /** Referrers pushed here and the upstream's, in one index (the pushed ones alone when the upstream fails). */
  async referrers(digest: string, artifactType: string | undefined): Promise<ListingAnswer> {
    const mine = await this.hosted.referrers(digest, artifactType);
    const theirs = await this.proxy.referrers(digest, artifactType).catch(() => undefined);
    if (!theirs) return mine;
    const a = (JSON.parse(mine.body.toString()) as { manifests: Array<{ digest: string }> }).manifests;
    let b: Array<{ digest: string }> = [];
    try {
      b = (JSON.parse(theirs.body.toString()) as { manifests?: Array<{ digest: string }> }).manifests ?? [];
    } catch {
      b = [];
    }
    const seen = new Set(a.map((m) => m.digest));
    const manifests = [...a, ...b.filter((m) => !seen.has(m.digest))];
    const out: ListingAnswer = { contentType: OCI_INDEX, body: Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests })) };
    if (artifactType !== undefined) out.headers = { 'oci-filters-applied': 'artifactType' };
    return out;
  }
}
