/**
 * Repository: the OCI distribution surface of one repository, which is all the HTTP
 * routes ever talk to (through a Namespace, namespace.ts). Implementations:
 *  - proxy/proxy-repository.ts: a pull-through cache of one upstream repository (writes
 *    answer 405 UNSUPPORTED);
 *  - hosted (issue 11): content pushed into regcache, no upstream.
 * One contract suite (test/contract/repository.contract.ts) runs against each.
 */
import type { CacheResult } from '../metrics/metrics.js';
import type { BlobBody } from '../store/blob-store.js';
import type { Readable } from 'node:stream';

export interface ManifestAnswer {
  digest: string;
  mediaType: string;
  size: number;
  /** Present for GET. */
  body?: Buffer;
  source: CacheResult;
  /** Extra response headers (e.g. OCI-Subject). */
  headers?: Record<string, string>;
}

export interface BlobAnswer {
  digest: string;
  /** Full blob size; undefined only for a chunked upstream answer during a fill. */
  size: number | undefined;
  /** Set for a 206 answer: inclusive byte range. */
  range?: { start: number; end: number };
  /** The body for GET (a committed blob, or a stream); absent for HEAD. */
  body?: Readable | BlobBody;
  source: CacheResult;
  /** A GET answered with a redirect (307) to this URL instead of a body (storage.s3Redirect). */
  location?: string;
  /**
   * The body sends nothing until the whole blob has come and verified (a Range of a blob
   * streamed through): the client-side inactivity timeouts wait until its first byte.
   */
  quietUntilVerified?: boolean;
}

export interface TagsAnswer {
  tags: string[];
  /** Query of the next page (n, last), when there is one. */
  next?: { n?: string; last: string };
}

export interface ListingAnswer {
  contentType: string;
  body: Buffer;
  headers?: Record<string, string>;
}

export interface ManifestGet {
  method: 'GET' | 'HEAD';
  /** Parsed Accept of the client (empty = anything). */
  accepted: string[];
  /** The raw Accept header. */
  acceptHeader: string | undefined;
}

export interface BlobGet {
  method: 'GET' | 'HEAD';
  range: string | undefined;
}

/** Where a repository lives: its upstream host (or `hosted`) and its name there. */
export interface RepositoryName {
  upstream: string;
  repo: string;
}

export interface Repository {
  readonly name: RepositoryName;
  /** `proxy` or `hosted`: for logs, metrics and the admin API. */
  readonly kind: 'proxy' | 'hosted';

  getManifest(reference: string, isDigest: boolean, opts: ManifestGet): Promise<ManifestAnswer>;
  /** The body is read by the repository, within its own size limit (a proxy refuses before reading). */
  putManifest(reference: string, body: Readable, contentType: string | undefined): Promise<{ digest: string; headers?: Record<string, string> }>;
  deleteManifest(reference: string): Promise<void>;

  getBlob(digest: string, opts: BlobGet): Promise<BlobAnswer>;
  deleteBlob(digest: string): Promise<void>;

  /** Upload sessions (POST, PATCH, PUT, GET, DELETE on /blobs/uploads/). */
  upload(op: UploadOp): Promise<UploadAnswer>;

  listTags(n: number | undefined, last: string | undefined): Promise<TagsAnswer>;
  referrers(digest: string, artifactType: string | undefined): Promise<ListingAnswer>;
}

/** Where a mounted blob comes from: a repository as the store keys it (the route checked pull access). */
export interface MountSource {
  digest: string;
  from: RepositoryName | undefined;
}

export type UploadOp =
  | { op: 'start'; digest?: string | undefined; mount?: MountSource | undefined; body?: Readable | undefined }
  | { op: 'append'; session: string; body: Readable; contentRange?: string | undefined }
  | { op: 'finish'; session: string; digest: string | undefined; body?: Readable | undefined }
  | { op: 'status'; session: string }
  | { op: 'cancel'; session: string };

export interface UploadAnswer {
  status: number;
  headers: Record<string, string>;
  /** What the Location header names (the route writes it with the client's repository name). */
  location?: { session: string } | { blob: string };
}
