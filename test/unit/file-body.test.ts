/** FileBody: a store file on its way to a client closes its handle and runs its hooks on every path. */
import { open, writeFile, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { BufferPool, FileBody } from '../../src/store/fs/file-body.js';
import { cleanupAll, tmpDir } from '../helpers/tmp.js';

afterAll(cleanupAll);

async function body(bytes: Buffer, start = 0, end = bytes.length - 1): Promise<{ fb: FileBody; closed: () => boolean; path: string }> {
  const path = join(tmpDir('regcache-fb-'), 'blob');
  await writeFile(path, bytes);
  const fb = new FileBody(await open(path, 'r'), start, end, new BufferPool());
  let closed = false;
  fb.onClose(() => { closed = true; });
  return { fb, closed: () => closed, path };
}

function sink(): { w: Writable; data: () => Buffer } {
  const chunks: Buffer[] = [];
  const w = new Writable({ write(c: Buffer, _e, cb) { chunks.push(Buffer.from(c)); cb(); } });
  return { w, data: () => Buffer.concat(chunks) };
}

const bytes = Buffer.from(Array.from({ length: 3 * 1024 * 1024 + 17 }, (_, i) => i % 251));

describe('FileBody', () => {
  it('stream(): a clean end closes the file and runs the close hooks (pins are released)', async () => {
    const { fb, closed } = await body(bytes);
    const s = sink();
    await pipeline(fb.stream(), s.w);
    expect(s.data().equals(bytes)).toBe(true);
    await new Promise((r) => setTimeout(r, 20));
    expect(closed()).toBe(true);
  });

  it('stream(): a file shorter than its row fails instead of ending', async () => {
    const { fb, path } = await body(bytes);
    await truncate(path, 1000);
    await expect(pipeline(fb.stream(), new PassThrough().resume())).rejects.toThrow(/gave 1000 of/);
  });

  it('writeTo(): a range is written exactly and the file is closed', async () => {
    const { fb, closed } = await body(bytes, 5, 2 * 1024 * 1024 + 9);
    const s = sink();
    const n = await fb.writeTo(s.w);
    expect(n).toBe(2 * 1024 * 1024 + 5);
    expect(s.data().equals(bytes.subarray(5, 2 * 1024 * 1024 + 10))).toBe(true);
    expect(closed()).toBe(true);
  });

  it('writeTo(): a destination that closes mid-way rejects and the file is still closed', async () => {
    const { fb, closed } = await body(bytes);
    let writes = 0;
    const w = new Writable({
      highWaterMark: 1,
      write(_c, _e, cb) {
        writes++;
        if (writes === 2) { this.destroy(); return; }
        cb();
      },
    });
    await expect(fb.writeTo(w)).rejects.toThrow();
    expect(closed()).toBe(true);
  });
});
