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
 *
 * Concurrent sessions of the same content share one spool (shared-spools.ts): a session's
 * first bytes pick it, and its record then names the shared file (two records may name one
 * file). After a restart nothing is shared: a session whose file another record names, or
 * that is open as a shared spool here, goes on with a copy of its prefix; one whose shared
 * file was committed meanwhile (`committedAs`) copies its prefix from that blob.
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { basename } from 'node:path';
import { Readable } from 'node:stream';
import { OciError } from '../../protocol/errors.js';
import { digestAlgorithm, isValidDigest } from '../../protocol/grammar.js';
import type { BlobStore, Spool } from '../../store/blob-store.js';
import { UPLOAD_STATE, type MetadataStore, type UploadSessionState } from '../../store/metadata-store.js';
import { copySpool, readSpool, spoolFrom } from '../../store/spool-io.js';
import { probeKey, SharedSpools, type BlobCommit, type Member } from './shared-spools.js';

interface Live {
  id: string;
  state: UploadSessionState;
  /** Where the session's bytes [0, state.size) are: its own spool, or the shared one it is a member of. */
  spool: Spool;
  /** Spool file names the session's record has had while it is held here (joining or leaving a shared spool renames it). */
  names: Set<string>;
  /** Set while the session is a member of a shared spool (then `spool` is that spool's). */
  member: Member | undefined;
  /** No byte taken yet: the first ones decide whether the session shares a spool. */
  fresh: boolean;
  /** Running sha256 of bytes [0, state.size); undefined when it must be recomputed. */
  hash: Hash | undefined;
  /** Serialises the session's requests. */
  queue: Promise<unknown>;
  /** Serialises writes of the session's record (its own, and another session's commit marking it). */
  saving: Promise<unknown>;
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
/** At least PROBE (shared-spools.ts): a session's first batch holds the bytes that pick its shared spool. */
const WRITE_BATCH = 128 * 1024;

function opened(id: string, state: UploadSessionState, spool: Spool, hash: Hash | undefined, fresh = false): Live {
  return { id, state, spool, names: new Set([state.spool]), member: undefined, fresh, hash, queue: Promise.resolve(), saving: Promise.resolve() };
}

export class UploadSessions {
  private readonly live = new Map<string, Live>();
  /** Sessions being reopened (after a restart), so two requests open one once. */
  private readonly opening = new Map<string, Promise<Live>>();
  private readonly shared: SharedSpools;

  constructor(private readonly d: UploadSessionDeps) {
    this.shared = new SharedSpools(d.blobs, (ids, digest) => this.committedAs(ids, digest));
  }

  /** Opens a new session for hosted repository `repo`; returns its id. */
  async start(repo: string): Promise<string> {
    const id = randomBytes(16).toString('hex');
    const spool = await this.d.blobs.createSpool();
    const now = this.d.now();
    const state: UploadSessionState = { repo, spool: basename(spool.path), size: 0, startedAt: now, activeAt: now, ...(this.d.cluster ? { owner: this.d.cluster.address } : {}) };
    try {
      await this.d.meta.putState(UPLOAD_STATE, id, state);
    } catch (err) {
      // Not recorded (the index locked elsewhere: 503): no session, no spool.
      await spool.close().catch(() => undefined);
      await this.d.blobs.discard(spool).catch(() => undefined);
      throw err;
    }
    this.live.set(id, opened(id, state, spool, createHash('sha256'), true));
    return id;
  }

  /** Writes the session's record (a snapshot), after any write of it still going. */
  private save(s: Live): Promise<void> {
    const state = { ...s.state };
    const run = s.saving.then(() => this.d.meta.putState(UPLOAD_STATE, s.id, state));
    s.saving = run.catch(() => undefined);
    return run;
  }

  /** Sessions whose bytes are a prefix of the blob their shared file was just committed as: recorded, for a restart. */
  private committedAs(ids: string[], digest: string): void {
    for (const id of ids) {
      const s = this.live.get(id);
      if (!s?.member) continue;
      s.state.committedAs = digest;
      this.save(s).catch(() => undefined);
    }
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
      s = this.live.get(id) ?? await this.reopen(id, state); // or loaded meanwhile
    }
    if (s.state.repo !== repo) throw unknown(id);
    return s;
  }

  /** Opens a recorded session that is not open here (a restart), once however many requests ask. */
  private reopen(id: string, state: UploadSessionState): Promise<Live> {
    let p = this.opening.get(id);
    if (!p) {
      p = (async () => {
        const spool = await this.reopenSpool(id, state);
        if (!spool) {
          await this.d.meta.deleteState(UPLOAD_STATE, id);
          throw unknown(id);
        }
        const s = opened(id, state, spool, undefined);
        this.live.set(id, s);
        return s;
      })().finally(() => this.opening.delete(id));
      this.opening.set(id, p);
    }
    return p;
  }

  /** A spool of the session's bytes [0, size) it may write into; undefined when they are gone. */
  private async reopenSpool(id: string, state: UploadSessionState): Promise<Spool | undefined> {
    const name = state.spool;
    const named = await this.d.blobs.openSpool(name);
    if (!named) {
      // Its shared file became a blob (and went): its bytes are that blob's first ones.
      return state.committedAs === undefined ? undefined : this.fromBlob(id, state, state.committedAs);
    }
    if (!(await this.namedByOthers(id, name))) {
      // A crash during a chunk may have left bytes past the recorded size: they were never acknowledged.
      await named.truncate(state.size);
      delete state.committedAs;
      return named;
    }
    // A shared file (another record names it): never cut or write into it; go on with a copy.
    let own: Spool;
    try {
      own = await copySpool(this.d.blobs, named, state.size);
    } finally {
      await named.close();
    }
    await this.moved(id, state, own);
    // The last session to leave the file removes it.
    if (!(await this.namedByOthers(id, name))) await this.d.blobs.removeSpool(name).catch(() => undefined);
    return own;
  }

  /** Whether another session's record here (or an open shared spool) names spool file `name`. */
  private async namedByOthers(id: string, name: string): Promise<boolean> {
    if (this.shared.isOpen(name)) return true;
    const here = this.d.cluster?.address;
    return (await this.d.meta.listState<UploadSessionState>(UPLOAD_STATE))
      .some((r) => r.key !== id && r.value.spool === name && (r.value.owner === undefined || r.value.owner === here));
  }

  /** A new spool with bytes [0, size) of committed blob `digest`; undefined when the blob is gone or shorter. */
  private async fromBlob(id: string, state: UploadSessionState, digest: string): Promise<Spool | undefined> {
    const stored = await this.d.blobs.stat(digest);
    if (stored === undefined || stored < state.size) return undefined;
    const body = state.size === 0 ? undefined : await this.d.blobs.open(digest, stored, 0, state.size - 1);
    if (state.size > 0 && !body) return undefined;
    const own = await spoolFrom(this.d.blobs, state.size, async (write) => {
      if (body) for await (const c of body.stream() as AsyncIterable<Buffer>) await write(c);
    }).catch(() => undefined).finally(() => body?.discard());
    if (own) await this.moved(id, state, own);
    return own;
  }

  /** Records that the session's bytes are now in `own`, a spool of its own. */
  private async moved(id: string, state: UploadSessionState, own: Spool): Promise<void> {
    state.spool = basename(own.path);
    delete state.committedAs;
    await this.d.meta.putState(UPLOAD_STATE, id, state);
  }

  /** With replicas: the record is the truth; a session held elsewhere moves here. */
  private async loadShared(id: string, repo: string): Promise<Live> {
    const cluster = this.d.cluster!;
    const state = await this.d.meta.getState<UploadSessionState>(UPLOAD_STATE, id);
    const held = this.live.get(id);
    if (held && state && held.names.has(state.spool) && state.owner === cluster.address) {
      if (held.state.repo !== repo) throw unknown(id);
      return held;
    }
    // Moved to another replica (or finished there) since: this spool is no longer the session.
    if (held) await this.drop(id, held);
    if (!state || state.repo !== repo) throw unknown(id);
    if (state.owner === undefined || state.owner === cluster.address) {
      // Ours but not open (restart): as a single process does.
      return this.live.get(id) ?? this.reopen(id, state);
    }
    return this.moveHere(id, state, state.owner);
  }

  /** Copies a session's bytes from `owner` into a spool here and records this replica as its owner. */
  private async moveHere(id: string, state: UploadSessionState, owner: string): Promise<Live> {
    const cluster = this.d.cluster!;
    const hash = createHash('sha256');
    let spool: Spool;
    try {
      const body = await cluster.fetch(owner, id, state.size);
      spool = await spoolFrom(this.d.blobs, state.size, async (write) => {
        for await (const chunk of body as AsyncIterable<Buffer>) {
          hash.update(chunk);
          await write(chunk);
        }
      });
    } catch (err) {
      throw new OciError('UNAVAILABLE', `the upload session is held by another replica that cannot hand it over: ${(err as Error).message}; retry the chunk`);
    }
    const moved: UploadSessionState = { ...state, spool: basename(spool.path), owner: cluster.address, activeAt: this.d.now() };
    await this.d.meta.putState(UPLOAD_STATE, id, moved);
    const s = opened(id, moved, spool, hash);
    this.live.set(id, s);
    return s;
  }

  /** Forgets a session held here without touching its record (another replica has it now). */
  private async drop(id: string, s: Live): Promise<void> {
    if (this.live.get(id) === s) this.live.delete(id);
    await this.release(s).catch(() => undefined);
  }

  /** Closes the session's spool and removes it (`keepFile`: keeps it, for a restart); a member leaves its shared spool. */
  private async release(s: Live, keepFile = false): Promise<void> {
    const m = s.member;
    s.member = undefined;
    if (m) return m.leave(keepFile);
    await s.spool.close();
    if (!keepFile) await this.d.blobs.discard(s.spool).catch(() => undefined);
  }

  /** Bytes [0, size) of a session whose spool is here, for the replica it moves to; undefined when not held here. */
  async bytesOf(id: string): Promise<{ size: number; body: Readable } | undefined> {
    const state = await this.d.meta.getState<UploadSessionState>(UPLOAD_STATE, id);
    if (!state || (state.owner !== undefined && state.owner !== this.d.cluster?.address)) return undefined;
    const held = await this.load(id, state.repo).catch(() => undefined);
    if (!held) return undefined;
    const s: Live = held;
    const size = s.state.size;
    async function* read(): AsyncGenerator<Buffer> {
      const buf = Buffer.allocUnsafe(CHUNK);
      for (let pos = 0; pos < size;) {
        // The session's bytes, wherever they are now (a member that detached has them in a spool of its own).
        const n = await s.spool.read(buf, 0, Math.min(CHUNK, size - pos), pos);
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
      // A chunk that did not arrive whole is cut off: the session stays at its last good size
      // (a shared file keeps the bytes: they may be other members' too).
      s.hash = undefined;
      if (!s.member) await s.spool.truncate(s.state.size).catch(() => undefined);
    };
    // Socket reads come in small chunks (16-64 KiB): gather them in one reused 128 KiB buffer and
    // take that at once (one syscall). Neither a new buffer per batch (garbage the collector lets
    // pile up) nor a bigger one: 20 concurrent 100 MiB pushes stay under 150 MB (bench scenario
    // 13). put() holds no reference to it once it returns.
    let batch: Buffer | undefined;
    let batched = 0;
    const flush = async (): Promise<void> => {
      if (batched === 0) return;
      const buf = batch!.subarray(0, batched);
      batched = 0;
      await this.put(s, buf, pos);
      pos += buf.length;
    };
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        s.hash?.update(chunk);
        for (let off = 0; off < chunk.length;) {
          batch ??= Buffer.allocUnsafe(WRITE_BATCH);
          const n = chunk.copy(batch, batched, off);
          batched += n;
          off += n;
          if (batched === batch.length) await flush();
        }
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
    const before = { size: s.state.size, activeAt: s.state.activeAt };
    s.state.size = pos;
    s.state.activeAt = this.d.now();
    try {
      await this.save(s);
    } catch (err) {
      // Not recorded (the index locked elsewhere: 503 "nothing was acknowledged"): the chunk is
      // not taken either, so the client's retry of it fits. The record may still land later
      // with the larger size; the next save overwrites it.
      s.state.size = before.size;
      s.state.activeAt = before.activeAt;
      await cut();
      throw err;
    }
  }

  /** Takes the session's bytes [pos, pos + buf.length): into its own spool, or compared with or appended to its shared one. */
  private async put(s: Live, buf: Buffer, pos: number): Promise<void> {
    if (s.fresh) await this.share(s, buf);
    if (!s.member) return s.spool.write(buf, pos);
    const took = await s.member.put(buf, pos);
    if (took === buf.length) return;
    // The shared file differs here (or is sealed): on with a copy of what matched.
    await this.detach(s, pos + took);
    await s.spool.write(buf.subarray(took), pos + took);
  }

  /** The session's first bytes: it joins the shared spool they pick, or its own spool becomes that. */
  private async share(s: Live, first: Buffer): Promise<void> {
    s.fresh = false;
    const own = s.spool;
    const m = this.shared.join(probeKey(first), own, s.id);
    s.member = m;
    if (m.spool === own) return;
    s.spool = m.spool;
    s.state.spool = m.shared.name;
    s.names.add(s.state.spool);
    if (m.shared.committed !== undefined) s.state.committedAs = m.shared.committed;
    // The record names the shared file before the session's own (empty) one goes.
    await this.save(s);
    await own.close();
    await this.d.blobs.discard(own).catch(() => undefined);
  }

  /** Leaves the shared spool with a spool of its own holding bytes [0, upTo). */
  private async detach(s: Live, upTo: number): Promise<void> {
    const m = s.member!;
    const own = await m.copy(upTo);
    s.member = undefined;
    s.spool = own;
    s.state.spool = basename(own.path);
    s.names.add(s.state.spool);
    delete s.state.committedAs;
    try {
      await this.save(s);
    } finally {
      await m.leave();
    }
  }

  /**
   * Appends the last chunk (if any), verifies the digest and makes the spool that blob.
   * A mismatch ends the session (its bytes are removed): 400 DIGEST_INVALID.
   */
  finish(id: string, repo: string, digest: string, body: Readable | undefined, to: BlobCommit): Promise<number> {
    return this.with(id, repo, async (s) => {
      if (body) await this.write(s, body);
      const actual = await this.digestOf(s, digestAlgorithm(digest));
      // The session ends either way; its record, if it cannot be deleted now (the index locked
      // elsewhere), names a spool that is gone and expires with the sessions (uploadExpiry).
      const end = (): Promise<void> => this.remove(id, s).catch(() => undefined);
      if (actual !== digest) {
        await end();
        throw new OciError('DIGEST_INVALID', 'the uploaded content does not match the digest', { digest, actual });
      }
      try {
        if (s.member) await s.member.commit(digest, s.state.size, to);
        else await to.commit(s.spool, s.state.size);
      } finally {
        await end();
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
    await readSpool(s.spool, s.state.size, (c) => void h.update(c));
    if (alg === 'sha256') {
      s.hash = h.copy();
    }
    return `${alg}:${h.digest('hex')}`;
  }

  private async remove(id: string, s: Live): Promise<void> {
    this.live.delete(id);
    await this.release(s);
    await s.saving;
    await this.d.meta.deleteState(UPLOAD_STATE, id);
  }

  /** Removes sessions idle since before `before` (ms), with their bytes; returns how many. */
  async expire(before: number): Promise<number> {
    let n = 0;
    const records = await this.d.meta.listState<UploadSessionState>(UPLOAD_STATE);
    if (this.d.cluster) {
      // Spools of sessions that moved to another replica, or ended there.
      const named = new Map(records.map((r) => [r.key, r.value.spool]));
      for (const [id, s] of [...this.live]) {
        const name = named.get(id);
        if (name === undefined || !s.names.has(name)) await this.drop(id, s);
      }
    }
    const gone = new Set<string>();
    for (const { key, value } of records) {
      const s = this.live.get(key);
      const activeAt = s ? s.state.activeAt : value.activeAt;
      if (activeAt >= before) continue;
      n++;
      gone.add(key);
      if (s) {
        await this.with(key, s.state.repo, (x) => this.remove(key, x)).catch(() => undefined);
      } else {
        // With replicas the spool may be another's: it goes with that replica's own sweep or restart.
        // Sessions that shared a spool before a restart name one file: the last to go removes it.
        const mine = value.owner === undefined || value.owner === this.d.cluster?.address;
        const named = records.some((r) => !gone.has(r.key) && r.value.spool === value.spool) || this.shared.isOpen(value.spool);
        if (mine && !named) await this.d.blobs.removeSpool(value.spool).catch(() => undefined);
        await this.d.meta.deleteState(UPLOAD_STATE, key);
      }
    }
    return n;
  }

  /** Closes the spools held open (the sessions themselves stay recorded). */
  async close(): Promise<void> {
    for (const s of this.live.values()) await this.release(s, true);
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
