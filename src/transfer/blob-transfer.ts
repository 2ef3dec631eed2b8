/**
 * One blob from a source repository to a destination repository: HEAD at the destination
 * first (present: nothing sent), else a cross-repository mount when the same destination
 * registry is known to hold it elsewhere, else an upload streamed from the source,
 * monolithic (POST, then one PUT with the body) up to `monolithicMax` bytes, chunked
 * (PATCHes of `chunkSize`, each streamed as its bytes arrive, then PUT) above. The destination checks the digest on the PUT,
 * so nothing unverified is committed there. A failed attempt starts over with a new
 * upload session (retry.ts decides whether to try again).
 */
import { Readable } from 'node:stream';
import { discard } from '../upstream/body.js';
import type { RegistryClient } from '../upstream/registry-client.js';
import { withRetry, type RetryOptions } from './retry.js';

export interface BlobRef {
  digest: string;
  size: number;
}

export interface RepoEndpoint {
  client: RegistryClient;
  /** Registry host as the mapping names it (mounts are only tried within one). */
  registry: string;
  repo: string;
}

export type BlobOutcome = 'present' | 'mounted' | 'sent' | 'would-send' | 'would-mount';

/**
 * Where blobs are known to be on each destination registry, shared by every copy of a
 * run: the repository to mount from, and the transfer in flight (a second copy of the same
 * blob into the same registry waits for the first and mounts instead of uploading again).
 */
export class MountIndex {
  private readonly where = new Map<string, string>();
  private readonly inflight = new Map<string, Promise<unknown>>();

  private key(registry: string, digest: string): string {
    return `${registry}|${digest}`;
  }

  seen(registry: string, digest: string, repo: string): void {
    if (!this.where.has(this.key(registry, digest))) this.where.set(this.key(registry, digest), repo);
  }

  from(registry: string, digest: string, notRepo: string): string | undefined {
    const r = this.where.get(this.key(registry, digest));
    return r !== undefined && r !== notRepo ? r : undefined;
  }

  pending(registry: string, digest: string): Promise<unknown> | undefined {
    return this.inflight.get(this.key(registry, digest));
  }

  track<T>(registry: string, digest: string, p: Promise<T>): Promise<T> {
    const k = this.key(registry, digest);
    const settled = p.then(() => undefined, () => undefined);
    this.inflight.set(k, settled);
    void settled.then(() => { if (this.inflight.get(k) === settled) this.inflight.delete(k); });
    return p;
  }
}

export interface BlobTransferOptions {
  dryRun: boolean;
  /** Send even when the destination has it. */
  force: boolean;
  monolithicMax: number;
  chunkSize: number;
  retry: RetryOptions;
  mounts: MountIndex;
  /** Called with every body byte count sent (progress). */
  onBytes?: (n: number) => void;
  signal?: AbortSignal;
}

export const DEFAULT_MONOLITHIC_MAX = 32 * 1024 * 1024;
export const DEFAULT_CHUNK_SIZE = 64 * 1024 * 1024;

/** The source body, counting bytes as they pass (for progress), without another stream in between. */
async function* counted(body: Readable, onBytes: ((n: number) => void) | undefined): AsyncGenerator<Buffer> {
  for await (const piece of body) {
    onBytes?.((piece as Buffer).length);
    yield piece as Buffer;
  }
}

/**
 * The next `n` bytes of a source, as a stream, without buffering them: a chunk of a
 * chunked upload goes out as its bytes arrive. `state.rest` carries over what a source
 * piece had beyond the chunk's end.
 */
async function* take(it: AsyncIterator<Buffer>, state: { rest?: Buffer | undefined }, n: number): AsyncGenerator<Buffer> {
  let left = n;
  while (left > 0) {
    let b: Buffer;
    if (state.rest) {
      b = state.rest;
      state.rest = undefined;
    } else {
      const r = await it.next();
      if (r.done) throw new Error(`source blob ended ${left} bytes early`);
      b = r.value;
    }
    if (b.length > left) {
      state.rest = b.subarray(left);
      b = b.subarray(0, left);
    }
    left -= b.length;
    yield b;
  }
}

type SourceBlob = Awaited<ReturnType<RegistryClient['getBlob']>>;

async function upload(dst: RepoEndpoint, blob: BlobRef, location: string, source: Promise<SourceBlob>, o: BlobTransferOptions): Promise<void> {
  const got = await source;
  const size = got.size ?? blob.size;
  const body = got.body;
  try {
    if (size <= o.monolithicMax) {
      await dst.client.finishUpload(dst.repo, location, blob.digest, Readable.from(counted(body, o.onBytes), { objectMode: false }), size);
      return;
    }
    const it = counted(body, o.onBytes);
    const state: { rest?: Buffer | undefined } = {};
    let loc = location;
    for (let offset = 0; offset < size; offset += o.chunkSize) {
      const len = Math.min(o.chunkSize, size - offset);
      loc = await dst.client.appendUpload(dst.repo, loc, Readable.from(take(it, state, len), { objectMode: false }), offset, len);
    }
    await dst.client.finishUpload(dst.repo, loc, blob.digest);
  } finally {
    body.destroy();
  }
}

/**
 * Copies one blob; returns what was done. Transfers of one digest into one registry run one
 * after the other (the second then finds it present, or mounts it), never side by side.
 */
export function transferBlob(src: RepoEndpoint, dst: RepoEndpoint, blob: BlobRef, o: BlobTransferOptions): Promise<BlobOutcome> {
  const prior = o.mounts.pending(dst.registry, blob.digest);
  const work = (async () => {
    if (prior) await prior;
    return transferOne(src, dst, blob, o);
  })();
  return o.mounts.track(dst.registry, blob.digest, work);
}

async function transferOne(src: RepoEndpoint, dst: RepoEndpoint, blob: BlobRef, o: BlobTransferOptions): Promise<BlobOutcome> {
  const retry = { ...o.retry, ...(o.signal ? { signal: o.signal } : {}) };
  if (!o.force) {
    const present = await withRetry(() => dst.client.has(dst.repo, 'blob', blob.digest), retry);
    if (present) {
      o.mounts.seen(dst.registry, blob.digest, dst.repo);
      return 'present';
    }
  }
  // Copying within one registry: the source repository itself is where to mount from.
  if (src.registry === dst.registry && src.repo !== dst.repo && src.client.transport.baseUrl.href === dst.client.transport.baseUrl.href) {
    o.mounts.seen(dst.registry, blob.digest, src.repo);
  }
  if (o.dryRun) {
    const mountable = o.mounts.from(dst.registry, blob.digest, dst.repo) !== undefined;
    o.mounts.seen(dst.registry, blob.digest, dst.repo);
    return mountable ? 'would-mount' : 'would-send';
  }
  const outcome = await withRetry(async () => {
    const from = o.force ? undefined : o.mounts.from(dst.registry, blob.digest, dst.repo);
    // Without a mount to try, the source GET goes out beside the destination's POST (one
    // round trip less before the first byte moves); a body not used is released.
    const early = from ? undefined : src.client.getBlob(src.repo, blob.digest, o.signal);
    // Handled here so a failure during the POST is not an unhandled rejection; upload() still sees it.
    early?.catch(() => undefined);
    const release = (): void => void early?.then((g) => discard(g.body), () => undefined);
    let started: Awaited<ReturnType<RegistryClient['startUpload']>>;
    try {
      started = await dst.client.startUpload(dst.repo, from ? { digest: blob.digest, from } : undefined);
    } catch (err) {
      release();
      throw err;
    }
    if (started.mounted) {
      release();
      return 'mounted' as const;
    }
    await upload(dst, blob, started.location, early ?? src.client.getBlob(src.repo, blob.digest, o.signal), o);
    return 'sent' as const;
  }, retry);
  o.mounts.seen(dst.registry, blob.digest, dst.repo);
  return outcome;
}
