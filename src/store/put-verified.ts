/**
 * BlobStore.put for any store: hashes a stream into a fresh spool while writing it, and
 * commits only if the bytes hash to `digest`; on any failure the spool is discarded, so
 * nothing is left (no blob, no spool).
 */
import { createHash } from 'node:crypto';
import { digestAlgorithm } from '../protocol/grammar.js';
import type { BlobStore } from './blob-store.js';

export async function putVerified(store: BlobStore, digest: string, body: AsyncIterable<Buffer>): Promise<number> {
  const spool = await store.createSpool();
  const hash = createHash(digestAlgorithm(digest));
  let n = 0;
  try {
    for await (const chunk of body) {
      hash.update(chunk);
      await spool.write(chunk, n);
      n += chunk.length;
    }
    const actual = `${digestAlgorithm(digest)}:${hash.digest('hex')}`;
    if (actual !== digest) throw new Error(`content does not match ${digest} (got ${actual})`);
    await store.commit(spool, digest);
    return n;
  } catch (err) {
    await store.discard(spool);
    throw err;
  } finally {
    await spool.close();
  }
}
