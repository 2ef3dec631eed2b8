/**
 * Upload sessions of hosted repositories (OCI distribution spec, "Pushing blobs"): each
 * session is a BlobStore spool plus a small record in the MetadataStore (UPLOAD_STATE), so a
 * chunked upload resumes after regcache restarts (recovery keeps the spools those records
 * name). Bytes are hashed with sha256 as they arrive; a sha512 digest, or a session whose
 * running hash was lost (restart, failed chunk), is hashed again from the spool. A session's
 * requests run one at a time. Nothing becomes a blob before its digest is verified; a failed
 * chunk is cut off the spool, so the session stays at its last good size.
 *
 * With replicas (deps.cluster) a session's record names the replica whose local spool holds
 * its bytes (`owner`). A chunk (or the final PUT) that reaches another replica first moves
 * the session there: that replica copies the bytes received so far from the owner's internal
 * listener into a spool of its own, hashing them as they arrive, and records itself as the
 * owner; the old owner drops its spool when it next sees the record (a request or the
 * expiry sweep). Clients may so spread the chunks of one push over any replicas.
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { basename } from 'node:path';
import { Readable } from 'node:stream';
import { OciError } from '../../protocol/errors.js';
import { digestAlgorithm, isValidDigest } from '../../protocol/grammar.js';
import type { BlobStore, Spool } from '../../store/blob-store.js';
import { UPLOAD_STATE, type MetadataStore, type UploadSessionState } from '../../store/metadata-store.js';

interface Live {
  id: string;
  state: UploadSessionState;
  spool: Spool;
  /** Running sha256 of bytes [0, state.size); undefined when it must be recomputed. */
  hash: Hash | undefined;
  /** Serialises the session's requests. */
  queue: Promise<unknown>;
}

export interface UploadSessionDeps {
  blobs: BlobStore;
  meta: MetadataStore;
  now: () => number;
  cluster?: UploadCluster;
}

/** How sessions move between replicas (ReplicaService). */
export interface UploadCluster {
  /** This replica's internal address, recorded as a session's owner. */
  address: string;
  /** Bytes [0, size) of session `id` from the replica at `owner`. */
  fetch(owner: string, id: string, size: number): Promise<Readable>;
}

const CHUNK = 1024 * 1024;
const WRITE_BATCH = 1024 * 1024;

/** Reads bytes [0, size) of a spool through `fn`. */
async function readSpool(spool: Spool, size: number, fn: (chunk: Buffer) => void): Promise<void> {
  const buf = Buffer.allocUnsafe(CHUNK);
  for (let pos = 0; pos < size;) {
    const n = await spool.read(buf, 0, Math.min(CHUNK, size - pos), pos);
    if (n <= 0) throw new Error('upload spool is shorter than its recorded size');
    fn(buf.subarray(0, n));
    pos += n;
  }
}

export class UploadSessions {
  private readonly live = new Map<string, Live>();

  constructor(private readonly d: UploadSessionDeps) {}

  /** Opens a new session for hosted repository `repo`; returns its id. */
  async start(repo: string): Promise<string> {
    const id = randomBytes(16).toString('hex');
    const spool = await this.d.blobs.createSpool();
    const now = this.d.now();
    const state: UploadSessionState = { repo, spool: basename(spool.path), size: 0, startedAt: now, activeAt: now, ...(this.d.cluster ? { owner: this.d.cluster.address } : {}) };
    await this.d.meta.putState(UPLOAD_STATE, id, state);
    this.live.set(id, { id, state, spool, hash: createHash('sha256'), queue: Promise.resolve() });
    return id;
  }

  /** Runs `fn` on the session alone; 404 BLOB_UPLOAD_UNKNOWN for an unknown one or one of another repository. */
  private async with<T>(id: string, repo: string, fn: (s: Live) => Promise<T>): Promise<T> {
    const s = await this.load(id, repo);
    const run = s.queue.then(async () => {
      if (this.live.get(id) !== s) throw unknown(id);
      return fn(s);
    });
    s.queue = run.catch(() => undefined);
    return run;
  }

  private async load(id: string, repo: string): Promise<Live> {
    if (this.d.cluster) return this.loadShared(id, repo);
    let s = this.live.get(id);
    if (!s) {
      const state = await this.d.meta.getState<UploadSessionState>(UPLOAD_STATE, id);
      if (!state) throw unknown(id);
      s = this.live.get(id); // loaded meanwhile
      if (!s) {
        const spool = await this.d.blobs.openSpool(state.spool);
        if (!spool) {
          await this.d.meta.deleteState(UPLOAD_STATE, id);
          throw unknown(id);
        }
        // A crash during a chunk may have left bytes past the recorded size: they were never acknowledged.
        await spool.truncate(state.size);
        s = { id, state, spool, hash: undefined, queue: Promise.resolve() };
        this.live.set(id, s);
      }
    }
    if (s.state.repo !== repo) throw unknown(id);
    return s;
  }

  /** With replicas: the record is the truth; a session held elsewhere moves here. */
  private async loadShared(id: string, repo: string): Promise<Live> {
    const cluster = this.d.cluster!;
    const state = await this.d.meta.getState<UploadSessionState>(UPLOAD_STATE, id);
    const held = this.live.get(id);
    if (held && state?.spool === held.state.spool && state.owner === cluster.address) {
      if (held.state.repo !== repo) throw unknown(id);
      return held;
    }
    // Moved to another replica (or finished there) since: this spool is no longer the session.
    if (held) await this.drop(id, held);
    if (!state || state.repo !== repo) throw unknown(id);
    if (state.owner === undefined || state.owner === cluster.address) {
      // Ours but not open (restart): as a single process does.
      const spool = await this.d.blobs.openSpool(state.spool);
      if (!spool) {
        await this.d.meta.deleteState(UPLOAD_STATE, id);
        throw unknown(id);
      }
      await spool.truncate(state.size);
      const s: Live = { id, state, spool, hash: undefined, queue: Promise.resolve() };
      this.live.set(id, s);
      return s;
    }
    return this.moveHere(id, state, state.owner);
  }

  /** Copies a session's bytes from `owner` into a spool here and records this replica as its owner. */
  private async moveHere(id: string, state: UploadSessionState, owner: string): Promise<Live> {
    const cluster = this.d.cluster!;
    const spool = await this.d.blobs.createSpool();
    const hash = createHash('sha256');
    let pos = 0;
    try {
      const body = await cluster.fetch(owner, id, state.size);
      for await (const chunk of body as AsyncIterable<Buffer>) {
        if (pos + chunk.length > state.size) throw new Error('the owner sent more bytes than the session has');
        hash.update(chunk);
        await spool.write(chunk, pos);
        pos += chunk.length;
      }
      if (pos !== state.size) throw new Error(`the owner sent ${pos} of ${state.size} bytes`);
    } catch (err) {
      await spool.close().catch(() => undefined);
      await this.d.blobs.discard(spool).catch(() => undefined);
      throw new OciError('UNAVAILABLE', `the upload session is held by another replica that cannot hand it over: ${(err as Error).message}; retry the chunk`);
    }
    const moved: UploadSessionState = { ...state, spool: basename(spool.path), owner: cluster.address, activeAt: this.d.now() };
    await this.d.meta.putState(UPLOAD_STATE, id, moved);
    const s: Live = { id, state: moved, spool, hash, queue: Promise.resolve() };
    this.live.set(id, s);
    return s;
  }

  /** Forgets a session held here without touching its record (another replica has it now). */
  private async drop(id: string, s: Live): Promise<void> {
    if (this.live.get(id) === s) this.live.delete(id);
    await s.spool.close().catch(() => undefined);
    await this.d.blobs.discard(s.spool).catch(() => undefined);
  }

  /** Bytes [0, size) of a session whose spool is here, for the replica it moves to; undefined when not held here. */
  async bytesOf(id: string): Promise<{ size: number; body: Readable } | undefined> {
    const state = await this.d.meta.getState<UploadSessionState>(UPLOAD_STATE, id);
    if (!state || (state.owner !== undefined && state.owner !== this.d.cluster?.address)) return undefined;
    const s = await this.load(id, state.repo).catch(() => undefined);
    if (!s) return undefined;
    const size = s.state.size;
    const spool = s.spool;
    async function* read(): AsyncGenerator<Buffer> {
      const buf = Buffer.allocUnsafe(CHUNK);
      for (let pos = 0; pos < size;) {
        const n = await spool.read(buf, 0, Math.min(CHUNK, size - pos), pos);
        if (n <= 0) throw new Error('upload spool is shorter than its recorded size');
        yield Buffer.from(buf.subarray(0, n));
        pos += n;
      }
    }
    return { size, body: Readable.from(read()) };
  }

  /** Bytes received so far. */
  size(id: string, repo: string): Promise<number> {
    if (this.d.cluster) {
      // Asking where an upload stands does not move it.
      return this.d.meta.getState<UploadSessionState>(UPLOAD_STATE, id).then((st) => {
        if (!st || st.repo !== repo) throw unknown(id);
        return st.size;
      });
    }
    return this.with(id, repo, async (s) => s.state.size);
  }

  /**
   * Appends a chunk. `start`, when the client sent Content-Range, must be the current size:
   * anything else is out of order (416 with the current Range).
   */
  append(id: string, repo: string, body: Readable, range: { start: number; end: number } | undefined): Promise<number> {
    return this.with(id, repo, async (s) => {
      if (range !== undefined && range.start !== s.state.size) {
        throw new OciError('RANGE_INVALID', `chunk starts at ${range.start}, but the upload has ${s.state.size} bytes`, undefined, {
          headers: { range: rangeHeader(s.state.size), 'docker-upload-uuid': id },
        });
      }
      await this.write(s, body, range === undefined ? undefined : range.end - range.start + 1);
      return s.state.size;
    });
  }

  /** Appends `body`; with `expected`, a chunk of another length is refused (400 SIZE_INVALID) and cut off. */
  private async write(s: Live, body: Readable, expected?: number): Promise<void> {
    let pos = s.state.size;
    const cut = async (): Promise<void> => {
      // A chunk that did not arrive whole is cut off: the session stays at its last good size.
      s.hash = undefined;
      await s.spool.truncate(s.state.size).catch(() => undefined);
    };
    // Socket reads come in small chunks (16-64 KiB): write them in batches of about 1 MiB, one syscall each.
    let batch: Buffer[] = [];
    let batched = 0;
    const flush = async (): Promise<void> => {
      if (batched === 0) return;
      const buf = batch.length === 1 ? batch[0]! : Buffer.concat(batch, batched);
      batch = [];
      batched = 0;
      await s.spool.write(buf, pos);
      pos += buf.length;
    };
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        s.hash?.update(chunk);
        batch.push(chunk);
        batched += chunk.length;
        if (batched >= WRITE_BATCH) await flush();
      }
      await flush();
    } catch (err) {
      await cut();
      throw new OciError('BLOB_UPLOAD_INVALID', `the chunk did not arrive whole: ${(err as Error).message}`);
    }
    if (expected !== undefined && pos - s.state.size !== expected) {
      await cut();
      throw new OciError('SIZE_INVALID', `Content-Range announced ${expected} bytes, the chunk had ${pos - s.state.size}`, undefined, {
        headers: { range: rangeHeader(s.state.size), 'docker-upload-uuid': s.id },
      });
    }
    s.state.size = pos;
    s.state.activeAt = this.d.now();
    await this.d.meta.putState(UPLOAD_STATE, s.id, s.state);
  }

  /**
   * Appends the last chunk (if any), verifies the digest and makes the spool that blob.
   * A mismatch ends the session (its bytes are removed): 400 DIGEST_INVALID.
   */
  finish(id: string, repo: string, digest: string, body: Readable | undefined, commit: (spool: Spool, size: number) => Promise<void>): Promise<number> {
    return this.with(id, repo, async (s) => {
      if (body) await this.write(s, body);
      const actual = await this.digestOf(s, digestAlgorithm(digest));
      if (actual !== digest) {
        await this.remove(id, s);
        throw new OciError('DIGEST_INVALID', 'the uploaded content does not match the digest', { digest, actual });
      }
      try {
        await commit(s.spool, s.state.size);
      } finally {
        await this.remove(id, s);
      }
      return s.state.size;
    });
  }

  cancel(id: string, repo: string): Promise<void> {
    return this.with(id, repo, (s) => this.remove(id, s));
  }

  private async digestOf(s: Live, alg: 'sha256' | 'sha512'): Promise<string> {
    if (alg === 'sha256' && s.hash) return `sha256:${s.hash.copy().digest('hex')}`;
    const h = createHash(alg);
    await readSpool(s.spool, s.state.size, (c) => h.update(c));
    if (alg === 'sha256') {
      s.hash = h.copy();
    }
    return `${alg}:${h.digest('hex')}`;
  }

  private async remove(id: string, s: Live): Promise<void> {
    this.live.delete(id);
    await s.spool.close();
    await this.d.blobs.discard(s.spool).catch(() => undefined);
    await this.d.meta.deleteState(UPLOAD_STATE, id);
  }

  /** Removes sessions idle since before `before` (ms), with their bytes; returns how many. */
  async expire(before: number): Promise<number> {
    let n = 0;
    const records = await this.d.meta.listState<UploadSessionState>(UPLOAD_STATE);
    if (this.d.cluster) {
      // Spools of sessions that moved to another replica, or ended there.
      const named = new Map(records.map((r) => [r.key, r.value.spool]));
      for (const [id, s] of [...this.live]) if (named.get(id) !== s.state.spool) await this.drop(id, s);
    }
    for (const { key, value } of records) {
      const s = this.live.get(key);
      const activeAt = s ? s.state.activeAt : value.activeAt;
      if (activeAt >= before) continue;
      n++;
      if (s) {
        await this.with(key, s.state.repo, (x) => this.remove(key, x)).catch(() => undefined);
      } else {
        // With replicas the spool may be another's: it goes with that replica's own sweep or restart.
        if (value.owner === undefined || value.owner === this.d.cluster?.address) await this.d.blobs.removeSpool(value.spool).catch(() => undefined);
        await this.d.meta.deleteState(UPLOAD_STATE, key);
      }
    }
    return n;
  }

  /** Closes the spools held open (the sessions themselves stay recorded). */
  async close(): Promise<void> {
    for (const s of this.live.values()) await s.spool.close();
    this.live.clear();
  }
}

function unknown(id: string): OciError {
  return new OciError('BLOB_UPLOAD_UNKNOWN', 'unknown or expired upload session', { session: id.slice(0, 64) });
}

/** The spec's Range header of an upload: inclusive end of the bytes received (`0-0` when none). */
export function rangeHeader(size: number): string {
  return `0-${Math.max(0, size - 1)}`;
}

export function assertDigestParam(digest: string | undefined): string {
  if (digest === undefined || !isValidDigest(digest)) {
    throw new OciError('DIGEST_INVALID', 'the digest query parameter is missing or not a sha256/sha512 digest', digest === undefined ? undefined : { digest: digest.slice(0, 200) });
  }
  return digest;
}
