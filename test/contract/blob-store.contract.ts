/**
 * The BlobStore contract: one suite that every implementation runs (filesystem today, an
 * object store next), in the style of hono's router/common.case.test.ts. Call
 * runBlobStoreContract(name, factory) from a test file of the implementation.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { BlobBody, BlobStore } from '../../src/store/blob-store.js';

export interface BlobStoreFixture {
  store: BlobStore;
  /** Removes everything the fixture made. */
  cleanup(): Promise<void>;
}

const digestOf = (b: Buffer, alg: 'sha256' | 'sha512' = 'sha256'): string => `${alg}:${createHash(alg).update(b).digest('hex')}`;

async function* chunks(b: Buffer, size = 64 * 1024): AsyncGenerator<Buffer> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

async function readBody(body: BlobBody, pooled: boolean): Promise<Buffer> {
  const out: Buffer[] = [];
  if (pooled) {
    const sink = new Writable({ write(c: Buffer, _e, cb): void { out.push(Buffer.from(c)); cb(); } });
    await body.writeTo(sink);
    return Buffer.concat(out);
  }
  for await (const c of body.stream() as Readable) out.push(c as Buffer);
  return Buffer.concat(out);
}

export function runBlobStoreContract(name: string, make: () => Promise<BlobStoreFixture>): void {
  describe(`BlobStore contract: ${name}`, () => {
    const fixtures: BlobStoreFixture[] = [];
    const fresh = async (): Promise<BlobStore> => {
      const f = await make();
      fixtures.push(f);
      await f.store.init();
      await f.store.init(); // idempotent
      return f.store;
    };
    afterEach(async () => {
      for (const f of fixtures.splice(0)) await f.cleanup();
    });

    it('put verifies and commits; stat, open (whole, range, both ways of writing), hash and list see it', async () => {
      const s = await fresh();
      const bytes = randomBytes(3 * 1024 * 1024 + 17);
      const d = digestOf(bytes);
      expect(await s.stat(d)).toBeUndefined();
      expect(await s.open(d, bytes.length)).toBeUndefined();
      expect(await s.put(d, chunks(bytes))).toBe(bytes.length);
      expect(await s.stat(d)).toBe(bytes.length);
      for (const pooled of [true, false]) {
        const whole = await s.open(d, bytes.length);
        expect(whole!.length).toBe(bytes.length);
        expect((await readBody(whole!, pooled)).equals(bytes)).toBe(true);
        const part = await s.open(d, bytes.length, 1000, 2_000_999);
        expect(part!.length).toBe(2_000_000);
        expect((await readBody(part!, pooled)).equals(bytes.subarray(1000, 2_001_000))).toBe(true);
      }
      expect(await s.hash(d)).toBe(d);
      const listed = [];
      for await (const b of s.list()) listed.push(b);
      expect(listed).toEqual([{ digest: d, size: bytes.length }]);
    });

    it('sha512 blobs are stored under their own algorithm', async () => {
      const s = await fresh();
      const bytes = randomBytes(1000);
      const d = digestOf(bytes, 'sha512');
      await s.put(d, chunks(bytes));
      expect(await s.stat(d)).toBe(1000);
      expect(await s.hash(d)).toBe(d);
    });

    it('put of bytes that do not match the digest leaves nothing: no blob, no spool', async () => {
      const s = await fresh();
      const bytes = randomBytes(100_000);
      const wrong = digestOf(randomBytes(10));
      await expect(s.put(wrong, chunks(bytes))).rejects.toThrow();
      expect(await s.stat(wrong)).toBeUndefined();
      expect(await s.listSpools()).toEqual([]);
      const listed = [];
      for await (const b of s.list()) listed.push(b);
      expect(listed).toEqual([]);
    });

    it('a failing body stream leaves nothing', async () => {
      const s = await fresh();
      const d = digestOf(Buffer.from('x'));
      async function* broken(): AsyncGenerator<Buffer> {
        yield Buffer.from('partial');
        throw new Error('connection reset');
      }
      await expect(s.put(d, broken())).rejects.toThrow('connection reset');
      expect(await s.stat(d)).toBeUndefined();
      expect(await s.listSpools()).toEqual([]);
    });

    it('a spool is readable while written, invisible until committed, and gone when discarded', async () => {
      const s = await fresh();
      const bytes = randomBytes(200_000);
      const d = digestOf(bytes);
      const spool = await s.createSpool();
      await spool.write(bytes.subarray(0, 100_000), 0);
      const back = Buffer.alloc(50_000);
      expect(await spool.read(back, 0, 50_000, 25_000)).toBe(50_000);
      expect(back.equals(bytes.subarray(25_000, 75_000))).toBe(true);
      await spool.write(bytes.subarray(100_000), 100_000);
      expect(await s.stat(d)).toBeUndefined();
      expect((await s.listSpools()).length).toBe(1);
      await s.commit(spool, d);
      await spool.close();
      expect(await s.stat(d)).toBe(bytes.length);
      expect(await s.listSpools()).toEqual([]);

      const other = await s.createSpool();
      await other.write(Buffer.from('abandoned'), 0);
      await s.discard(other);
      await other.close();
      expect(await s.listSpools()).toEqual([]);
    });

    it('writev puts many buffers in order at a position (empty ones and more than IOV_MAX included)', async () => {
      const s = await fresh();
      const head = randomBytes(1000);
      // 1,500 small pieces and some empty ones: more buffers than one pwritev takes (IOV_MAX is 1,024 on Linux).
      const pieces = Array.from({ length: 1500 }, (_, i) => (i % 100 === 7 ? Buffer.alloc(0) : randomBytes(1 + (i % 97))));
      const all = Buffer.concat([head, ...pieces]);
      const spool = await s.createSpool();
      await spool.write(head, 0);
      await spool.writev(pieces, head.length);
      const back = Buffer.alloc(all.length);
      expect(await spool.read(back, 0, all.length, 0)).toBe(all.length);
      expect(back.equals(all)).toBe(true);
      await s.commit(spool, digestOf(all));
      await spool.close();
      expect(await s.hash(digestOf(all))).toBe(digestOf(all));
    });

    it('spools left by an earlier process are listed and removable', async () => {
      const s = await fresh();
      const spool = await s.createSpool();
      await spool.write(Buffer.from('left behind'), 0);
      await spool.close();
      const names = await s.listSpools();
      expect(names).toHaveLength(1);
      await s.removeSpool(names[0]!);
      expect(await s.listSpools()).toEqual([]);
    });

    it('a spool reopens by its name (an upload session after a restart), keeps its bytes and can be cut back', async () => {
      const s = await fresh();
      const spool = await s.createSpool();
      await spool.write(Buffer.from('0123456789'), 0);
      await spool.close();
      const [name] = await s.listSpools();
      const again = (await s.openSpool(name!))!;
      const buf = Buffer.alloc(10);
      expect(await again.read(buf, 0, 10, 0)).toBe(10);
      expect(buf.toString()).toBe('0123456789');
      await again.truncate(4);
      await again.write(Buffer.from('ab'), 4);
      const out = Buffer.alloc(10);
      expect(await again.read(out, 0, 10, 0)).toBe(6);
      expect(out.subarray(0, 6).toString()).toBe('0123ab');
      await again.close();
      expect(await s.openSpool('nonexistent.part')).toBeUndefined();
      expect(await s.openSpool('../../etc/passwd')).toBeUndefined();
    });

    it('delete removes a blob; deleting again is fine', async () => {
      const s = await fresh();
      const bytes = randomBytes(1000);
      const d = digestOf(bytes);
      await s.put(d, chunks(bytes));
      await s.delete(d);
      expect(await s.stat(d)).toBeUndefined();
      expect(await s.open(d, 1000)).toBeUndefined();
      await s.delete(d);
    });

    it('a body that is never read, then released, closes', async () => {
      const s = await fresh();
      const bytes = randomBytes(1000);
      const d = digestOf(bytes);
      await s.put(d, chunks(bytes));
      const body = await s.open(d, 1000);
      let closed = false;
      body!.onClose(() => { closed = true; });
      const st = body!.stream();
      st.destroy();
      await new Promise((r) => setTimeout(r, 50));
      expect(closed).toBe(true);
    });

    it('reports whether it is writable and, where bounded, its space', async () => {
      const s = await fresh();
      expect(await s.writable()).toBe(true);
      const space = await s.space();
      if (space) expect(space.total).toBeGreaterThanOrEqual(space.free);
    });
  });
}
