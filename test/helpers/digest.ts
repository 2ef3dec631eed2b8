/** Content digests as OCI writes them. */
import { createHash } from 'node:crypto';

/** `sha256:<hex>` of the bytes. */
export function sha256(buf: Buffer | string): string {
  return `sha256:${createHash('sha256').update(buf).digest('hex')}`;
}
