/**
 * Shared spools: concurrent uploads of the same content write it to disk once (issue 11).
 *
 * Clients push a blob as POST, PATCH with the whole body, PUT ?digest= (or POST ?digest=, or
 * POST then PUT ?digest= with the body): the digest is not known while the bytes arrive. So an
 * upload session's first bytes decide. The first PROBE bytes of its first write (all of them,
 * when its first request is shorter) and their length are a key; the session joins the open
 * shared spool of that key, or makes its own new, empty spool the shared spool of that key.
 *
 * A shared spool's file only grows: bytes [0, written) never change once written. Each member
 * (a session) has its own position and running hash (upload-sessions.ts). Its bytes below
 * `written` are compared with the file (no lock: they never change); its bytes at `written`
 * are appended under the spool's lock, which is held for one write and never while waiting
 * for a client. So a member's bytes [0, position) always equal the file's. A member whose
 * bytes differ (another blob with the same first bytes, a client that lies) gets 0 back from
 * put() short of its chunk and detaches (UploadSessions): it copies its prefix into a spool of
 * its own and goes on there, never writing into the shared file again.
 *
 * A verified member commits the file when the file is exactly its size: sealed first (nobody
 * writes into it again; the file is cut to that size), then BlobStore.commit, tried once (after
 * a failure nobody joins the file, and verified members commit copies). Members still
 * streaming compare through the open handle, which outlives the rename (FsBlobStore) or the
 * upload and unlink (S3BlobStore); one that needs to write past a sealed file detaches. A later
 * member of the committed digest only links the blob; a member whose content is shorter than
 * the file, or whose digest is another one, commits a copy of its prefix. The last member out
 * closes the file, and removes it unless it was committed.
 */
import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import type { BlobStore, Spool } from '../../store/blob-store.js';
import { copySpool, readFully } from '../../store/spool-io.js';

/** How many first bytes of an upload pick its shared spool. */
export const PROBE = 64 * 1024;
/** Per member, for comparing its bytes with the file's (bounds memory: 20 uploads, 1.25 MiB). */
const SCRATCH = 64 * 1024;

/** The key of a shared spool: the length and sha256 of the first PROBE bytes (or fewer: all there are). */
export function probeKey(first: Buffer): string {
  const probe = first.subarray(0, PROBE);
  return `${probe.length}:${createHash('sha256').update(probe).digest('hex')}`;
}

/** How a verified upload becomes a blob (HostedRepository). */
export interface BlobCommit {
  /** Makes bytes [0, size) of `spool` (exactly its length) the blob and links it. */
  commit(spool: Spool, size: number): Promise<void>;
  /** Links the blob if it is stored with `size` bytes; false when it is not (commit instead). */
  link(size: number): Promise<boolean>;
}

export class SharedSpool {
  /** Bytes in the file; they never change. */
  written = 0;
  /** Its one commit was tried: nobody writes into the file again. */
  sealed = false;
  /** The digest the file was committed as. */
  committed: string | undefined;
  committing: Promise<void> | undefined;
  readonly members = new Set<Member>();
  private lock: Promise<unknown> = Promise.resolve();

  constructor(readonly key: string, readonly spool: Spool) {}

  /** The file name upload records name (unchanged by a commit). */
  get name(): string {
    return basename(this.spool.path);
  }

  /** Runs `fn` alone among the writers of this file. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn);
    this.lock = run.catch(() => undefined);
    return run;
  }
}

export class SharedSpools {
  /** The shared spools new sessions may join, by key. */
  private readonly byKey = new Map<string, SharedSpool>();
  /** Every shared spool open here (one whose commit failed is no longer joinable, but still open). */
  private readonly files = new Set<SharedSpool>();

  /** `onCommitted`: told which sessions' bytes are now a prefix of the committed blob `digest`. */
  constructor(readonly blobs: BlobStore, readonly onCommitted: (sessions: string[], digest: string) => void) {}

  /**
   * Session `session` joins the open shared spool of `key`, or makes `own` (its new, empty
   * spool) the shared spool of `key`. `member.spool === own` tells which.
   */
  join(key: string, own: Spool, session: string): Member {
    let sh = this.byKey.get(key);
    if (!sh) {
      sh = new SharedSpool(key, own);
      this.byKey.set(key, sh);
      this.files.add(sh);
    }
    const m = new Member(sh, session, this);
    sh.members.add(m);
    return m;
  }

  /** Whether a shared spool of this file name is open here (nobody may cut it or write into it). */
  isOpen(name: string): boolean {
    for (const sh of this.files) if (sh.name === name) return true;
    return false;
  }

  /** No session joins `sh` any more (its commit failed: the file may be gone or half-renamed). */
  unjoinable(sh: SharedSpool): void {
    if (this.byKey.get(sh.key) === sh) this.byKey.delete(sh.key);
  }

  /** Called by the last member out. */
  closed(sh: SharedSpool): void {
    this.unjoinable(sh);
    this.files.delete(sh);
  }
}

/** One session's place in a shared spool. */
export class Member {
  private scratch: Buffer | undefined;

  constructor(readonly shared: SharedSpool, readonly session: string, private readonly registry: SharedSpools) {}

  get spool(): Spool {
    return this.shared.spool;
  }

  /**
   * Takes this member's bytes [pos, pos + buf.length) (pos never past `written`): compared
   * where the file has bytes, appended where it ends. Returns how many it took; fewer than
   * buf.length: the file differs there, or is sealed, and the member must detach.
   */
  async put(buf: Buffer, pos: number): Promise<number> {
    const sh = this.shared;
    let off = 0;
    while (off < buf.length) {
      const at = pos + off;
      if (at < sh.written) {
        const n = Math.min(buf.length - off, sh.written - at);
        const same = await this.compare(buf.subarray(off, off + n), at);
        off += same;
        if (same < n) return off;
        continue;
      }
      const rest = buf.subarray(off);
      const wrote = await sh.exclusive(async () => {
        if (at !== sh.written) return 0; // another member wrote here meanwhile: compare it
        if (sh.sealed) return -1;
        try {
          await sh.spool.write(rest, at);
        } catch (err) {
          // Nothing past `written` is anyone's yet.
          await sh.spool.truncate(at).catch(() => undefined);
          throw err;
        }
        sh.written = at + rest.length;
        return rest.length;
      });
      if (wrote < 0) return off;
      off += wrote;
    }
    return off;
  }

  /** How many bytes from the start of `b` equal the file's at `at` (in whole scratch pieces). */
  private async compare(b: Buffer, at: number): Promise<number> {
    const scratch = (this.scratch ??= Buffer.allocUnsafe(SCRATCH));
    for (let off = 0; off < b.length;) {
      const n = Math.min(scratch.length, b.length - off);
      const got = await readFully(this.shared.spool, scratch, n, at + off);
      if (got < n || !scratch.subarray(0, n).equals(b.subarray(off, off + n))) return off;
      off += n;
    }
    return b.length;
  }

  /** A spool of its own holding this member's bytes [0, upTo) (detaching; the caller then leaves). */
  copy(upTo: number): Promise<Spool> {
    return copySpool(this.registry.blobs, this.shared.spool, upTo);
  }

  /**
   * Makes this verified member's bytes [0, size) the blob `digest`: commits the shared file
   * when it is exactly that (one try, ever), links the blob when the file was committed as
   * `digest`, else commits a copy of the prefix (also after that one try failed).
   */
  async commit(digest: string, size: number, to: BlobCommit): Promise<void> {
    const sh = this.shared;
    for (;;) {
      if (sh.committing) {
        await sh.committing;
        continue;
      }
      if (sh.committed === digest) {
        if (await to.link(size)) return;
        break;
      }
      if (sh.sealed || size !== sh.written) break;
      const mine = await sh.exclusive(async () => {
        if (sh.sealed || size !== sh.written) return undefined;
        // Sealed and committing in one step: a member that finishes meanwhile waits for this
        // commit (and then links) instead of seeing a sealed file with no commit under way.
        sh.sealed = true;
        const run = (async () => {
          // A write that failed half-way may have left bytes past `written` (nobody writes once sealed).
          await sh.spool.truncate(size);
          await to.commit(sh.spool, size);
        })().then(() => {
          sh.committed = digest;
          this.registry.onCommitted([...sh.members].map((m) => m.session), digest);
        }, (err: unknown) => {
          this.registry.unjoinable(sh);
          throw err;
        });
        sh.committing = run.then(() => undefined, () => undefined).then(() => {
          sh.committing = undefined;
        });
        return { run };
      });
      if (mine) return mine.run;
    }
    const own = await this.copy(size);
    try {
      await to.commit(own, size);
    } finally {
      await own.close();
      await this.registry.blobs.discard(own).catch(() => undefined);
    }
  }

  /** Leaves the shared spool; the last member out closes it and removes the file (unless committed, or `keepFile`). */
  async leave(keepFile = false): Promise<void> {
    const sh = this.shared;
    if (!sh.members.delete(this) || sh.members.size > 0) return;
    this.registry.closed(sh);
    await sh.spool.close();
    if (!keepFile && sh.committed === undefined) await this.registry.blobs.discard(sh.spool).catch(() => undefined);
  }
}
