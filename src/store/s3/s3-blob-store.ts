/**
 * The S3 BlobStore (AWS SDK v3): blobs are objects in a bucket (layout in keys.ts), spools
 * are local files, so a fill is hashed and read back by its readers as it streams in, exactly
 * as with the filesystem store; commit() uploads the verified spool (upload.ts) and the object
 * appears under the digest's key only when the upload completes. Works with AWS S3 and
 * S3-compatible stores (tested against Ceph's RADOS Gateway; see docs/replicas.md).
 *
 * Credentials come from the standard AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
 * AWS_PROFILE, web identity, instance metadata) unless given explicitly (tests).
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { access, open, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import {
  CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, ListObjectsV2Command, S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { digestAlgorithm } from '../../protocol/grammar.js';
import type { BlobInfo, BlobStore, Spool } from '../blob-store.js';
import { FileSpool } from '../fs/fs-blob-store.js';
import { putVerified } from '../put-verified.js';
import { keys, type Keys } from './keys.js';
import { S3Body } from './s3-body.js';
import { DEFAULT_PART_SIZE, uploadSpool } from './upload.js';

export interface S3Options {
  bucket: string;
  /** Key prefix inside the bucket (several regcache clusters may share one bucket). */
  prefix?: string;
  /** For S3-compatible stores (http://host:port); unset: AWS's endpoint for the region. */
  endpoint?: string | undefined;
  region?: string;
  /** Path-style addressing (bucket in the path, not the host name): S3-compatible stores. */
  forcePathStyle?: boolean;
  /** Explicit credentials; unset: the standard AWS chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined;
  /** Local directory for spools (fills in progress). */
  spoolDir: string;
  partSize?: number;
  /** Create the bucket at init when it does not exist (default true). */
  createBucket?: boolean;
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'NoSuchKey' || e.name === 'NotFound' || e.name === 'NoSuchBucket' || e.$metadata?.httpStatusCode === 404;
}

export class S3BlobStore implements BlobStore {
  readonly s3: S3Client;
  private readonly keys: Keys;
  private ready = false;

  constructor(private readonly opts: S3Options) {
    this.keys = keys(opts.prefix ?? '');
    // Many blobs stream at once (one GET per client): the SDK's default of 50 sockets would queue them.
    const agent = { keepAlive: true, maxSockets: 1024 };
    this.s3 = new S3Client({
      region: opts.region ?? 'us-east-1',
      ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
      forcePathStyle: opts.forcePathStyle ?? false,
      ...(opts.credentials ? { credentials: opts.credentials } : {}),
      // Content-MD5 protects every upload; the newer default checksums are not understood by
      // every S3-compatible store (Ceph Pacific), so send them only where an operation needs one.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: { httpAgent: new HttpAgent(agent), httpsAgent: new HttpsAgent(agent) },
    });
  }

  private get bucket(): string {
    return this.opts.bucket;
  }

  async init(): Promise<void> {
    await mkdir(this.opts.spoolDir, { recursive: true });
    if (this.ready) return;
    try {
      await this.s3.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      if (!isNotFound(err) || this.opts.createBucket === false) throw err;
      await this.s3.send(new CreateBucketCommand({ Bucket: this.bucket })).catch((e: { name?: string }) => {
        // Another replica created it meanwhile.
        if (e.name !== 'BucketAlreadyOwnedByYou' && e.name !== 'BucketAlreadyExists') throw e;
      });
    }
    this.ready = true;
  }

  async stat(digest: string): Promise<number | undefined> {
    try {
      const r = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.keys.blobKey(digest) }));
      return r.ContentLength;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async open(digest: string, size: number, start = 0, end = size - 1): Promise<S3Body | undefined> {
    const whole = start === 0 && end === size - 1;
    try {
      const r = await this.s3.send(new GetObjectCommand({
        Bucket: this.bucket, Key: this.keys.blobKey(digest), ...(whole || size === 0 ? {} : { Range: `bytes=${start}-${end}` }),
      }));
      return new S3Body(r.Body as Readable, size === 0 ? 0 : end - start + 1);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** A time-limited URL a client can GET the blob from directly (redirect mode). */
  redirectUrl(digest: string, expiresInSeconds: number): Promise<string> {
    return getSignedUrl(this.s3, new GetObjectCommand({ Bucket: this.bucket, Key: this.keys.blobKey(digest) }), { expiresIn: expiresInSeconds });
  }

  createSpool(): Promise<FileSpool> {
    return FileSpool.create(this.opts.spoolDir);
  }

  /** A spool an upload session recorded (resumed uploads); spools are local files here too. */
  async openSpool(name: string): Promise<FileSpool | undefined> {
    if (!/^[0-9a-f]{24}\.part$/.test(name)) return undefined;
    const path = join(this.opts.spoolDir, name);
    try {
      return new FileSpool(path, await open(path, 'r+'));
    } catch {
      return undefined;
    }
  }

  async commit(spool: Spool, digest: string): Promise<void> {
    const size = (await stat(spool.path)).size;
    await uploadSpool(this.s3, this.bucket, this.keys.blobKey(digest), spool, size, this.opts.partSize ?? DEFAULT_PART_SIZE);
    // The spool has served its purpose: the blob now lives in the bucket.
    await rm(spool.path, { force: true });
  }

  async discard(spool: Spool): Promise<void> {
    await rm(spool.path, { force: true });
  }

  put(digest: string, body: AsyncIterable<Buffer>): Promise<number> {
    return putVerified(this, digest, body);
  }

  async delete(digest: string): Promise<void> {
    await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.keys.blobKey(digest) }));
  }

  /** Every object under the blob prefix, paged by the store; `digest` undefined for a stray key. */
  private async *objects(): AsyncIterable<{ key: string; size: number; digest: string | undefined }> {
    let token: string | undefined;
    do {
      const r = await this.s3.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.keys.blobsPrefix, ContinuationToken: token }));
      for (const o of r.Contents ?? []) if (o.Key) yield { key: o.Key, size: o.Size ?? 0, digest: this.keys.digestOf(o.Key) };
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
  }

  async *list(): AsyncIterable<BlobInfo> {
    for await (const o of this.objects()) if (o.digest) yield { digest: o.digest, size: o.size };
  }

  async hash(digest: string): Promise<string> {
    const alg = digestAlgorithm(digest);
    const h = createHash(alg);
    const r = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.keys.blobKey(digest) }));
    for await (const chunk of r.Body as Readable) h.update(chunk as Buffer);
    return `${alg}:${h.digest('hex')}`;
  }

  async listSpools(): Promise<string[]> {
    try {
      return await readdir(this.opts.spoolDir);
    } catch {
      return [];
    }
  }

  async removeSpool(name: string): Promise<void> {
    if (name.includes('/') || name === '..' || name === '.') return;
    await rm(join(this.opts.spoolDir, name), { force: true, recursive: true });
  }

  async listStray(): Promise<string[]> {
    const out: string[] = [];
    for await (const o of this.objects()) if (!o.digest) out.push(o.key.slice(this.keys.blobsPrefix.length));
    return out;
  }

  async removeStray(path: string): Promise<void> {
    await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: `${this.keys.blobsPrefix}${path}` }));
  }

  /** Object stores are unbounded as far as regcache can tell (retention.maxSize bounds them). */
  async space(): Promise<undefined> {
    return undefined;
  }

  /** The bucket answers and local spools can be written. */
  async writable(): Promise<boolean> {
    try {
      await access(this.opts.spoolDir, constants.W_OK);
      await this.s3.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    this.s3.destroy();
  }
}
