/**
 * A blob (or a range of it) streaming from an object store's GET response. The response is
 * already open (its headers arrived: the object exists); the body is the socket's stream,
 * so it is never pooled: stream() hands it over, and writeTo() pipes it with backpressure.
 */
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BlobBody } from '../blob-store.js';

export class S3Body implements BlobBody {
  private readonly closers: Array<() => void> = [];
  private closed = false;

  constructor(private readonly source: Readable, readonly length: number) {
    source.once('close', () => this.close());
  }

  canWritePooled(): boolean {
    return false;
  }

  discard(): void {
    this.source.destroy();
    this.close();
  }

  async writeTo(dest: Writable): Promise<number> {
    let n = 0;
    this.source.on('data', (c: Buffer) => { n += c.length; });
    await pipeline(this.source, dest, { end: false });
    if (n !== this.length) throw new Error(`object store sent ${n} of ${this.length} bytes`);
    return n;
  }

  stream(): Readable {
    // A short body (the store's connection dropped) must fail, never end cleanly.
    let n = 0;
    const expected = this.length;
    const src = this.source;
    const out = new Readable({
      read(): void { src.resume(); },
      destroy(err, cb): void { src.destroy(); cb(err); },
    });
    src.on('data', (c: Buffer) => {
      n += c.length;
      if (!out.push(c)) src.pause();
    });
    src.once('end', () => (n === expected ? out.push(null) : out.destroy(new Error(`object store sent ${n} of ${expected} bytes`))));
    src.once('error', (err) => out.destroy(err));
    return out;
  }

  onClose(fn: () => void): void {
    if (this.closed) fn();
    else this.closers.push(fn);
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const fn of this.closers.splice(0)) fn();
  }
}
