/**
 * One BlobFill read by many in-process readers, fed by a fake upstream body: shared by the
 * fan-out component test and scripts/bench/fill-fanout-inproc.ts (which measures its CPU).
 * Needs no system tools.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { FillBody } from '../../src/registry/proxy/fill-body.js';
import { BlobFill } from '../../src/registry/proxy/fill.js';
import type { SlabPool } from '../../src/registry/proxy/slabs.js';
import { SocketBody } from '../../src/upstream/socket-body.js';
import { FsBlobStore } from '../../src/store/fs/fs-blob-store.js';

export interface TestBlob {
  bytes: Buffer;
  digest: string;
}

export function randomBlob(size: number): TestBlob {
  const bytes = randomBytes(size);
  return { bytes, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` };
}

/**
 * An upstream body that sends `bytes` in `chunk`-sized pieces, one per macrotask (as a socket
 * delivers them), so readers interleave with the fill as they do in the server.
 */
export function upstreamBody(bytes: Buffer, chunk = 64 * 1024): Readable {
  let off = 0;
  return new Readable({
    read(): void {
      setImmediate(() => {
        if (off >= bytes.length) {
          this.push(null);
          return;
        }
        const end = Math.min(bytes.length, off + chunk);
        this.push(bytes.subarray(off, end));
        off = end;
      });
    },
  });
}

/**
 * An upstream body as socket-get.ts delivers it: every piece is copied into ONE reused
 * buffer and lent to the consumer, then the buffer is scribbled over, so a consumer that kept
 * a view instead of copying hands out wrong bytes (and fails its digest). Flow control is
 * honoured: while paused, nothing is delivered.
 */
export function lentBody(bytes: Buffer, chunk = 64 * 1024): SocketBody {
  const shared = Buffer.alloc(chunk);
  let off = 0;
  let paused = true;
  let scheduled = false;
  let aborted = false;
  const tick = (): void => {
    scheduled = false;
    if (paused || aborted) return;
    if (off >= bytes.length) {
      body.complete();
      return;
    }
    const n = bytes.copy(shared, 0, off, Math.min(bytes.length, off + chunk));
    off += n;
    body.deliver(shared, 0, n);
    shared.fill(0xee);
    schedule();
  };
  const schedule = (): void => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(tick);
  };
  const body: SocketBody = new SocketBody({
    pause: () => {
      paused = true;
    },
    resume: () => {
      paused = false;
      schedule();
    },
    abort: () => {
      aborted = true;
    },
  });
  return body;
}

export interface ReaderResult {
  bytes: number;
  /** sha256 digest of what the reader got, when hashing. */
  digest?: string;
  /** How the reader's stream finished: a clean end, or an error. */
  outcome: 'end' | 'error';
}

/** Reads a stream to its end (or error), counting and optionally hashing the bytes. */
export function consume(stream: Readable, hash: boolean): Promise<ReaderResult> {
  return new Promise((resolve) => {
    const h = hash ? createHash('sha256') : undefined;
    let bytes = 0;
    stream.on('data', (c: Buffer) => {
      bytes += c.length;
      h?.update(c);
    });
    stream.once('end', () => resolve({ bytes, outcome: 'end', ...(h ? { digest: `sha256:${h.digest('hex')}` } : {}) }));
    stream.once('error', () => resolve({ bytes, outcome: 'error' }));
  });
}

/**
 * A client that takes bytes slowly enough to fill its buffer (the write callback comes a
 * macrotask later, highWaterMark 64 KiB), so writers meet backpressure and wait for 'drain'.
 */
export function sink(hash: boolean): { dest: Writable; bytes: () => number; digest: () => string | undefined } {
  const h = hash ? createHash('sha256') : undefined;
  let bytes = 0;
  const dest = new Writable({
    highWaterMark: 64 * 1024,
    write(chunk: Buffer, _enc, cb): void {
      bytes += chunk.length;
      h?.update(chunk);
      setImmediate(cb);
    },
  });
  return { dest, bytes: () => bytes, digest: () => (h ? `sha256:${h.digest('hex')}` : undefined) };
}

/** A body as the HTTP/1.1 route sends it: writeTo() for a FillBody, a pipe for a stream. */
export async function consumeBody(body: Readable | FillBody, hash: boolean): Promise<ReaderResult> {
  if (!(body instanceof FillBody)) return consume(body, hash);
  const s = sink(hash);
  try {
    await body.writeTo(s.dest);
    // As the route ends the response: what was handed over but is still buffered goes out.
    await new Promise<void>((resolve) => s.dest.end(resolve));
  } catch {
    return { bytes: s.bytes(), outcome: 'error' };
  }
  const digest = s.digest();
  return { bytes: s.bytes(), outcome: 'end', ...(digest ? { digest } : {}) };
}

export interface FanOutRun {
  fill: BlobFill;
  results: ReaderResult[];
  commits: number;
}

/**
 * Starts one fill of `blob` (announced size = its length, digest = `digest`), attaches
 * `readers` readers at once (Readable readers, or FillBody.writeTo into slow sinks), runs
 * `body` into it, and waits for every reader and the fill.
 */
export async function fanOut(opts: { blob: TestBlob; digest?: string; readers: number; hash: boolean; body: Readable; writeTo?: boolean; slabs?: SlabPool }): Promise<FanOutRun> {
  const size = opts.blob.bytes.length;
  return withFill(opts, (fill) => Array.from({ length: opts.readers }, () => (opts.writeTo
    ? consumeBody(new FillBody(fill, 0, size - 1), opts.hash)
    : consume(fill.createReader(), opts.hash))));
}

/**
 * One fill of `blob` fed by `body`, with the readers `attach` creates before it starts;
 * resolves when every reader and the fill are over (the temp directory is then removed).
 */
export async function withFill<R>(opts: { blob: TestBlob; digest?: string; body: Readable; slabs?: SlabPool }, attach: (fill: BlobFill) => Array<Promise<R>>): Promise<{ fill: BlobFill; results: R[]; commits: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'regcache-fanout-'));
  try {
    const store = new FsBlobStore(dir);
    await store.init();
    const spool = await store.createSpool();
    let commits = 0;
    const fill = new BlobFill(opts.digest ?? opts.blob.digest, opts.blob.bytes.length, spool, {
      commit: async () => {
        commits++;
      },
      discard: async () => undefined,
    }, opts.slabs);
    const readers = attach(fill);
    const [results] = await Promise.all([Promise.all(readers), fill.run(opts.body)]);
    await fill.settledPromise;
    return { fill, results, commits };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
