/** Bounded reading of upstream bodies: nothing an upstream sends is buffered without a limit. */
import type { Readable } from 'node:stream';

export class BodyTooLargeError extends Error {
  override name = 'BodyTooLargeError';
}

/** Reads a body up to `limit` bytes; beyond that it stops reading, destroys the body and throws. */
export async function readAtMost(body: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) {
      body.destroy();
      throw new BodyTooLargeError(`body larger than ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

/** Most of an error or redirect answer worth reading to keep the connection reusable. */
const DISCARD_LIMIT = 64 * 1024;

/**
 * Discards a body we do not need (error answers, HEADs): small ones are read so the
 * connection can be reused, anything longer is cut.
 */
export function discard(body: Readable): void {
  let seen = 0;
  body.on('error', () => undefined);
  body.on('data', (c: Buffer) => {
    seen += c.length;
    if (seen > DISCARD_LIMIT) body.destroy();
  });
  body.resume();
}
