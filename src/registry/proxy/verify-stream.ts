/**
 * A pass-through that hashes what flows and holds back the final chunk until the digest
 * is verified: on a mismatch the stream errors instead of ending, so a client never gets
 * wrong bytes as a complete response. Used when a blob streams through without caching.
 */
import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { digestAlgorithm } from '../../protocol/grammar.js';
import { FillError } from './fill.js';

export function verifyingStream(digest: string, onMismatch: () => void): Transform {
  const hash = createHash(digestAlgorithm(digest));
  let held: Buffer | undefined;
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback): void {
      hash.update(chunk);
      const out = held;
      held = chunk;
      cb(null, out);
    },
    flush(cb: TransformCallback): void {
      const actual = `${digestAlgorithm(digest)}:${hash.digest('hex')}`;
      if (actual !== digest) {
        onMismatch();
        cb(new FillError('digest', `digest mismatch: upstream sent ${actual}`));
        return;
      }
      cb(null, held);
    },
  });
}
