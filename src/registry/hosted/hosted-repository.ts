/**
 * A Repository whose content is pushed into regcache (issue 11): the whole OCI push,
 * discovery and management API, with no upstream. Content is stored under the HOSTED
 * namespace of the MetadataStore (repo = the full name the hosted patterns match), blobs in
 * the one BlobStore shared with the cache (a layer pushed twice, or pushed and cached, is
 * stored once). What it answers is decided by its pattern's config (deletes, sparse index).
 */
import type { Readable } from 'node:stream';
import type { HostedRepositoryConfig } from '../../config/types.js';
import { OciError } from '../../protocol/errors.js';
import { looksLikeDigest } from '../../protocol/grammar.js';
import { parseRange } from '../../protocol/range.js';
import type { BlobStore, Spool } from '../../store/blob-store.js';
import { HOSTED, type MetadataStore, type RepoRef } from '../../store/metadata-store.js';
import { localReferrers } from '../proxy/listings.js';
import type { Pins } from '../proxy/pins.js';
import type {
  BlobAnswer, BlobGet, ListingAnswer, ManifestAnswer, ManifestGet, Repository, TagsAnswer, UploadAnswer, UploadOp,
} from '../repository.js';
import { checkPushedManifest, isNonDistributable } from './manifest-rules.js';
import type { BlobCommit } from './shared-spools.js';
import { assertDigestParam, rangeHeader, type UploadSessions } from './upload-sessions.js';

export interface HostedDeps {
  blobs: BlobStore;
  meta: MetadataStore;
  sessions: UploadSessions;
  pins: Pins;
  now: () => number;
  maxManifestSize: () => number;
}

const DEFAULT_PAGE = 1000;

/** Reads a request body of at most `max` bytes; a larger one is refused without being buffered. */
async function readLimited(body: Readable, max: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of body as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > max) {
      body.resume();
      throw new OciError('MANIFEST_TOO_LARGE', `the manifest is larger than ${max} bytes (hosted.maxManifestSize)`);
    }
    parts.push(c);
  }
  return Buffer.concat(parts);
}

/** `Content-Range: <start>-<end>` (inclusive) of a PATCH (the spec's form; `bytes=` tolerated). */
function chunkRange(header: string | undefined): { start: number; end: number } | undefined {
  if (header === undefined) return undefined;
  const m = /^\s*(?:bytes[ =])?\s*(\d{1,15})-(\d{1,15})\s*$/.exec(header);
  if (!m || Number(m[2]) < Number(m[1])) throw new OciError('RANGE_INVALID', 'Content-Range must be <start>-<end>');
  return { start: Number(m[1]), end: Number(m[2]) };
}

function notAllowed(what: string, key: string): OciError {
  return new OciError('UNSUPPORTED', `${what} is not allowed in this repository (hostedRepositories.<pattern>.${key})`);
}

export class HostedRepository implements Repository {
  readonly kind = 'hosted' as const;
  readonly name: RepoRef;

  /** `mirroredBy`: the sync job whose mirror this is; then every client write is refused. */
  constructor(private readonly d: HostedDeps, repo: string, private readonly policy: HostedRepositoryConfig, private readonly mirroredBy?: string) {
    this.name = { upstream: HOSTED, repo };
  }

  /** A sync job's mirror holds exactly what the job put there (Quay's mirror repositories are read-only). */
  private refuseMirror(): void {
    if (this.mirroredBy === undefined) return;
    throw new OciError('UNSUPPORTED', `${this.name.repo} is a mirror kept by sync job ${this.mirroredBy} (sync.${this.mirroredBy}.target): pushes and deletes are refused`, { name: this.name.repo, job: this.mirroredBy });
  }

  // ---- manifests ----

  private async resolve(reference: string, isDigest: boolean): Promise<string> {
    if (isDigest) {
      if (await this.d.meta.isLinked(this.name, reference)) return reference;
    } else {
      const t = await this.d.meta.getTag(this.name, reference);
      if (t) return t.digest;
    }
    throw new OciError('MANIFEST_UNKNOWN', 'manifest unknown', { name: this.name.repo, reference });
  }

  async getManifest(reference: string, isDigest: boolean, opts: ManifestGet): Promise<ManifestAnswer> {
    const digest = await this.resolve(reference, isDigest);
    const rec = await this.d.meta.getManifest(digest);
    if (!rec) throw new OciError('MANIFEST_UNKNOWN', 'manifest unknown', { name: this.name.repo, reference });
    if (opts.method === 'GET') this.d.meta.touch(digest, this.d.now());
    const body = Buffer.from(rec.body);
    return { digest, mediaType: rec.mediaType, size: rec.size, source: 'hit', ...(opts.method === 'GET' ? { body } : {}) };
  }

  async putManifest(reference: string, body: Readable, contentType: string | undefined): Promise<{ digest: string; headers?: Record<string, string> }> {
    this.refuseMirror();
    const isDigest = looksLikeDigest(reference);
    const bytes = await readLimited(body, this.d.maxManifestSize());
    const m = checkPushedManifest(bytes, contentType, reference, isDigest);
    // Pinned from the check to the commit: nothing may delete a referenced blob in between.
    const refs = [...m.refs.blobs.map((b) => b.digest), ...m.refs.manifests.map((c) => c.digest)];
    const releases = refs.map((d) => this.d.pins.pin(d));
    try {
      for (const b of m.refs.blobs) {
        if (isNonDistributable(b.mediaType)) continue;
        const size = await this.d.meta.blobSize(b.digest);
        if (size === undefined || !(await this.d.meta.isLinked(this.name, b.digest))) {
          throw new OciError('MANIFEST_BLOB_UNKNOWN', 'the manifest references a blob this repository does not have', { digest: b.digest });
        }
        if (b.size !== undefined && b.size !== size) {
          throw new OciError('MANIFEST_INVALID', `the descriptor of ${b.digest} says ${b.size} bytes, the blob has ${size}`, { digest: b.digest });
        }
      }
      if (!this.policy.sparseIndex) {
        for (const c of m.refs.manifests) {
          if (!(await this.d.meta.isLinked(this.name, c.digest)) || !(await this.d.meta.getManifest(c.digest))) {
            throw new OciError('MANIFEST_BLOB_UNKNOWN', 'the index references a manifest this repository does not have (hostedRepositories.<pattern>.sparseIndex allows that)', { digest: c.digest });
          }
        }
      }
      const now = this.d.now();
      await this.d.meta.putManifest(
        { digest: m.digest, mediaType: m.mediaType, size: bytes.length, body: bytes },
        { blobs: m.refs.blobs.map((b) => b.digest), manifests: m.refs.manifests.map((c) => c.digest), subject: m.refs.subject, artifactType: m.refs.artifactType },
        this.name, now,
      );
      if (!isDigest) await this.d.meta.putTag(this.name, reference, m.digest, now);
    } finally {
      for (const r of releases) r();
    }
    return m.refs.subject ? { digest: m.digest, headers: { 'oci-subject': m.refs.subject } } : { digest: m.digest };
  }

  async deleteManifest(reference: string): Promise<void> {
    this.refuseMirror();
    if (!looksLikeDigest(reference)) {
      if (!this.policy.deleteTags) throw notAllowed('deleting tags', 'deleteTags');
      if (!(await this.d.meta.deleteTag(this.name, reference))) throw new OciError('MANIFEST_UNKNOWN', 'tag unknown', { tag: reference });
      return;
    }
    if (!this.policy.deleteManifests) throw notAllowed('deleting manifests', 'deleteManifests');
    if (!(await this.d.meta.unlink(this.name, reference))) throw new OciError('MANIFEST_UNKNOWN', 'manifest unknown', { digest: reference });
  }

  // ---- blobs ----

  async getBlob(digest: string, opts: BlobGet): Promise<BlobAnswer> {
    const size = await this.d.meta.blobSize(digest);
    if (size === undefined || !(await this.d.meta.isLinked(this.name, digest))) throw new OciError('BLOB_UNKNOWN', 'blob unknown', { digest });
    const r = parseRange(opts.range, size);
    if (r.kind === 'unsatisfiable' || r.kind === 'invalid') {
      throw new OciError('RANGE_INVALID', r.kind === 'invalid' ? r.reason : 'requested range not satisfiable', undefined, { headers: { 'content-range': `bytes */${size}` } });
    }
    const range = r.kind === 'range' ? { start: r.start, end: r.end } : undefined;
    if (opts.method === 'HEAD') return { digest, size, source: 'hit', ...(range ? { range } : {}) };
    const release = this.d.pins.pin(digest);
    const body = await this.d.blobs.open(digest, size, range?.start, range?.end);
    if (!body) {
      release();
      throw new OciError('BLOB_UNKNOWN', 'blob unknown', { digest });
    }
    body.onClose(release);
    this.d.meta.touch(digest, this.d.now());
    return { digest, size, body, source: 'hit', ...(range ? { range } : {}) };
  }

  async deleteBlob(digest: string): Promise<void> {
    this.refuseMirror();
    if (!this.policy.deleteBlobs) throw notAllowed('deleting blobs', 'deleteBlobs');
    if ((await this.d.meta.blobSize(digest)) === undefined || !(await this.d.meta.unlink(this.name, digest))) {
      throw new OciError('BLOB_UNKNOWN', 'blob unknown', { digest });
    }
  }

  // ---- uploads ----

  /** How a verified upload of `digest` becomes a blob linked here (upload-sessions.ts, shared-spools.ts). */
  private blobCommit(digest: string): BlobCommit {
    return {
      commit: (spool, size) => this.commit(spool, digest, size),
      link: (size) => this.link(digest, size),
    };
  }

  /** Commits a verified spool as `digest` (once, however many uploads of it finish) and links it here. */
  private async commit(spool: Spool, digest: string, size: number): Promise<void> {
    const release = this.d.pins.pin(digest);
    try {
      // A GC deletion of this digest in flight finishes first; then this file is the blob.
      await this.d.pins.settled(digest);
      await this.d.blobs.commit(spool, digest);
      await this.d.meta.putBlob(digest, size, this.name, this.d.now());
    } finally {
      release();
    }
  }

  /** Links `digest` here when it is stored with `size` bytes (another upload of the same bytes committed it). */
  private async link(digest: string, size: number): Promise<boolean> {
    const release = this.d.pins.pin(digest);
    try {
      await this.d.pins.settled(digest);
      if ((await this.d.blobs.stat(digest)) !== size) return false;
      await this.d.meta.putBlob(digest, size, this.name, this.d.now());
      return true;
    } finally {
      release();
    }
  }

  async upload(op: UploadOp): Promise<UploadAnswer> {
    this.refuseMirror();
    const repo = this.name.repo;
    const s = this.d.sessions;
    switch (op.op) {
      case 'start': {
        if (op.mount) {
          const mounted = await this.mount(op.mount.digest, op.mount.from);
          if (mounted) return created(op.mount.digest);
        }
        if (op.digest !== undefined) {
          // Monolithic: POST with the whole blob and its digest.
          const digest = assertDigestParam(op.digest);
          const id = await s.start(repo);
          if (op.body) await s.append(id, repo, op.body, undefined).catch(async (err: unknown) => {
            await s.cancel(id, repo).catch(() => undefined);
            throw err;
          });
          await s.finish(id, repo, digest, undefined, this.blobCommit(digest));
          return created(digest);
        }
        const id = await s.start(repo);
        return { status: 202, headers: { range: '0-0', 'docker-upload-uuid': id, 'content-length': '0' }, location: { session: id } };
      }
      case 'append': {
        const size = await s.append(op.session, repo, op.body, chunkRange(op.contentRange));
        return { status: 202, headers: { range: rangeHeader(size), 'docker-upload-uuid': op.session, 'content-length': '0' }, location: { session: op.session } };
      }
      case 'finish': {
        const digest = assertDigestParam(op.digest);
        await s.finish(op.session, repo, digest, op.body, this.blobCommit(digest));
        return created(digest);
      }
      case 'status': {
        const size = await s.size(op.session, repo);
        return { status: 204, headers: { range: rangeHeader(size), 'docker-upload-uuid': op.session }, location: { session: op.session } };
      }
      case 'cancel':
        await s.cancel(op.session, repo);
        return { status: 204, headers: {} };
    }
  }

  /** Links a blob another repository has (pushed there, or cached from its upstream); false: upload instead. */
  private async mount(digest: string, from: RepoRef | undefined): Promise<boolean> {
    if (!from) return false;
    const release = this.d.pins.pin(digest);
    try {
      await this.d.pins.settled(digest);
      const size = await this.d.meta.blobSize(digest);
      if (size === undefined || !(await this.d.meta.isLinked(from, digest))) return false;
      if ((await this.d.blobs.stat(digest)) !== size) return false;
      await this.d.meta.putBlob(digest, size, this.name, this.d.now());
      return true;
    } finally {
      release();
    }
  }

  // ---- listings ----

  async listTags(n: number | undefined, last: string | undefined): Promise<TagsAnswer> {
    const limit = n ?? DEFAULT_PAGE;
    if (limit === 0) return { tags: [] };
    const tags = await this.d.meta.listTags(this.name, last ?? '', limit + 1);
    const page = tags.slice(0, limit);
    return tags.length > limit ? { tags: page, next: { n: String(limit), last: page[page.length - 1]! } } : { tags: page };
  }

  async referrers(digest: string, artifactType: string | undefined): Promise<ListingAnswer> {
    return localReferrers(this.d.meta, digest, artifactType, (d) => this.d.meta.isLinked(this.name, d));
  }
}

function created(digest: string): UploadAnswer {
  return { status: 201, headers: { 'docker-content-digest': digest, 'content-length': '0' }, location: { blob: digest } };
}
