/**
 * Uploads a local spool to one key: a single PutObject when small, else a multipart upload
 * whose parts are read back from the spool. Every request carries the Content-MD5 of its
 * bytes, so the store rejects anything damaged on the way; the object becomes visible only
 * when the upload completes, and a failed multipart upload is aborted (no parts left).
 */
import { createHash } from 'node:crypto';
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, PutObjectCommand, UploadPartCommand,
  type CompletedPart, type S3Client,
} from '@aws-sdk/client-s3';
import type { Spool } from '../blob-store.js';

/** S3 allows at most 10,000 parts of at least 5 MiB (except the last). */
const MAX_PARTS = 10_000;
export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;
/** Parts in flight per upload: enough to fill a link, bounded memory (2 x part size). */
const PARALLEL_PARTS = 2;

async function readPart(spool: Spool, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let off = 0;
  while (off < length) {
    const n = await spool.read(buf, off, length - off, position + off);
    if (n === 0) throw new Error(`spool ended at ${position + off}, expected ${position + length} bytes`);
    off += n;
  }
  return buf;
}

const md5 = (b: Buffer): string => createHash('md5').update(b).digest('base64');

export async function uploadSpool(s3: S3Client, bucket: string, key: string, spool: Spool, size: number, partSize = DEFAULT_PART_SIZE): Promise<void> {
  const part = Math.max(partSize, Math.ceil(size / MAX_PARTS));
  if (size <= part) {
    const body = await readPart(spool, 0, size);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentLength: size, ContentMD5: md5(body), ContentType: 'application/octet-stream' }));
    return;
  }
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: 'application/octet-stream' }));
  if (!UploadId) throw new Error('the object store returned no upload id');
  try {
    const count = Math.ceil(size / part);
    const done: CompletedPart[] = new Array(count);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < count) {
        const i = next++;
        const start = i * part;
        const body = await readPart(spool, start, Math.min(part, size - start));
        const r = await s3.send(new UploadPartCommand({
          Bucket: bucket, Key: key, UploadId, PartNumber: i + 1, Body: body, ContentLength: body.length, ContentMD5: md5(body),
        }));
        done[i] = { PartNumber: i + 1, ETag: r.ETag };
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL_PARTS, count) }, worker));
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: done } }));
  } catch (err) {
    await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId })).catch(() => undefined);
    throw err;
  }
}
