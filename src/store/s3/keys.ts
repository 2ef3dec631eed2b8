/**
 * The one place that knows the object layout in the bucket:
 *
 *   <prefix>blobs/<alg>/<first 2 hex>/<hex>    committed, verified blobs, named by digest
 *
 * Nothing else is written under the prefix: spools are local files, and an object appears
 * under a digest's key only when a verified upload completes (PutObject and
 * CompleteMultipartUpload are atomic: a reader sees all of it or nothing).
 */
import { digestAlgorithm, digestHex, isValidDigest } from '../../protocol/grammar.js';

export interface Keys {
  /** `<prefix>blobs/`: the listing prefix. */
  readonly blobsPrefix: string;
  blobKey(digest: string): string;
  /** The digest a key under blobsPrefix names, or undefined for anything else (stray). */
  digestOf(key: string): string | undefined;
}

export function keys(prefix: string): Keys {
  const p = prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
  const blobsPrefix = `${p}blobs/`;
  return {
    blobsPrefix,
    blobKey(digest: string): string {
      const hex = digestHex(digest);
      return `${blobsPrefix}${digestAlgorithm(digest)}/${hex.slice(0, 2)}/${hex}`;
    },
    digestOf(key: string): string | undefined {
      if (!key.startsWith(blobsPrefix)) return undefined;
      const parts = key.slice(blobsPrefix.length).split('/');
      if (parts.length !== 3) return undefined;
      const [alg, two, hex] = parts as [string, string, string];
      const digest = `${alg}:${hex}`;
      return hex.startsWith(two) && two.length === 2 && isValidDigest(digest) ? digest : undefined;
    },
  };
}
