/**
 * Real OCI / Docker schema2 images built in memory: gzip'd tar layers, image configs with correct diff_ids,
 * manifests, OCI indexes and Docker manifest lists. Pushing lives in push.ts (re-exported here).
 */
import { createCipheriv, createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { sha256 } from './digest.js';
import { tarFiles } from './tar.js';

export { sha256 } from './digest.js';
export { pushBlob, pushImage, pushIndex, pushManifest, deleteManifest, fetchManifest, type RegistryAuth } from './push.js';

export type ImageFormat = 'oci' | 'docker';

export const MediaType = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

/** Content-addressed bytes. */
export interface Blob {
  digest: string;
  size: number;
  bytes: Buffer;
  mediaType: string;
}

/** A gzip'd tar layer. mediaType is the OCI one; makeImage uses the Docker one for docker images. */
export interface Layer extends Blob {
  /** sha256 of the uncompressed tar (what rootfs.diff_ids lists). */
  diffId: string;
  uncompressedSize: number;
}

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

export interface Image {
  format: ImageFormat;
  /** The manifest's media type. */
  mediaType: string;
  /** Digest, size and bytes of the manifest. */
  digest: string;
  size: number;
  bytes: Buffer;
  manifest: Record<string, unknown>;
  config: Blob;
  layers: Layer[];
  platform: Platform;
}

export interface Index {
  format: ImageFormat;
  mediaType: string;
  digest: string;
  size: number;
  bytes: Buffer;
  manifest: Record<string, unknown>;
  images: Image[];
}

export type LayerSpec = Record<string, Buffer | string> | { randomBytes: number; seed?: string };

export interface LayerOptions {
  /** gzip level (default 0 = stored blocks for random layers, 6 otherwise). */
  gzipLevel?: number;
}

/**
 * `n` pseudo-random, incompressible bytes determined by `seed` (AES-256-CTR keystream; hundreds of MB/s).
 */
export function seededBytes(n: number, seed: string): Buffer {
  const key = createHash('sha256').update(`regcache-test:${seed}`).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(n)), cipher.final()]);
}

let randomSeedCounter = 0;

/**
 * A gzip'd tar layer, either of the given files or of one file `random.bin` with `randomBytes` bytes.
 * Without a seed, random layers differ per call; with one, they are reproducible.
 */
export function makeLayer(spec: LayerSpec, opts: LayerOptions = {}): Layer {
  let tar: Buffer;
  let level = opts.gzipLevel ?? 6;
  if (typeof spec.randomBytes === 'number') {
    const r = spec as { randomBytes: number; seed?: string };
    const seed = r.seed ?? `${process.pid}-${Date.now()}-${randomSeedCounter++}-${Math.random()}`;
    tar = tarFiles({ 'random.bin': seededBytes(r.randomBytes, seed) });
    level = opts.gzipLevel ?? 0; // stored deflate blocks: still valid gzip, 10x faster, random data would not shrink anyway
  } else {
    tar = tarFiles(spec as Record<string, Buffer | string>);
  }
  const bytes = gzipSync(tar, { level });
  return { digest: sha256(bytes), size: bytes.length, bytes, mediaType: MediaType.ociLayer, diffId: sha256(tar), uncompressedSize: tar.length };
}

/** Bytes plus their digest and size. */
export function makeBlob(bytes: Buffer | string, mediaType = 'application/octet-stream'): Blob {
  const b = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
  return { digest: sha256(b), size: b.length, bytes: b, mediaType };
}

export interface ImageOptions {
  format: ImageFormat;
  layers: Layer[];
  /** Default amd64. */
  arch?: string;
  /** Default linux. */
  os?: string;
  variant?: string;
  /** Image config labels; different labels give a different config (and manifest) with the same layers. */
  labels?: Record<string, string>;
  /** Config `created` (default 2024-01-01T00:00:00Z, so images are reproducible). */
  created?: string;
  /** Manifest annotations (OCI only). */
  annotations?: Record<string, string>;
}

const descriptor = (b: { mediaType: string; digest: string; size: number }): Record<string, unknown> => ({
  mediaType: b.mediaType,
  digest: b.digest,
  size: b.size,
});

/** An image: config blob (architecture, os, rootfs.diff_ids), manifest bytes and digest. */
export function makeImage(opts: ImageOptions): Image {
  const platform: Platform = { architecture: opts.arch ?? 'amd64', os: opts.os ?? 'linux' };
  if (opts.variant !== undefined) platform.variant = opts.variant;
  const created = opts.created ?? '2024-01-01T00:00:00Z';
  const oci = opts.format === 'oci';
  const configJson = {
    created,
    ...platform,
    config: {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      Cmd: ['/bin/sh'],
      ...(opts.labels ? { Labels: opts.labels } : {}),
    },
    rootfs: { type: 'layers', diff_ids: opts.layers.map((l) => l.diffId) },
    history: opts.layers.map((_, i) => ({ created, created_by: `regcache test layer ${i}` })),
  };
  const config = makeBlob(JSON.stringify(configJson), oci ? MediaType.ociConfig : MediaType.dockerConfig);
  const layerType = oci ? MediaType.ociLayer : MediaType.dockerLayer;
  const layers = opts.layers.map((l) => ({ ...l, mediaType: layerType }));
  const mediaType = oci ? MediaType.ociManifest : MediaType.dockerManifest;
  const manifest: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType,
    config: descriptor(config),
    layers: layers.map(descriptor),
  };
  if (opts.annotations && oci) manifest.annotations = opts.annotations;
  const bytes = Buffer.from(JSON.stringify(manifest, null, 2));
  return { format: opts.format, mediaType, digest: sha256(bytes), size: bytes.length, bytes, manifest, config, layers, platform };
}

/** An OCI image index or a Docker manifest list over the images, each with its platform. */
export function makeIndex(format: ImageFormat, images: Image[], opts: { annotations?: Record<string, string> } = {}): Index {
  const mediaType = format === 'oci' ? MediaType.ociIndex : MediaType.dockerList;
  const manifest: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType,
    manifests: images.map((img) => ({ ...descriptor(img), platform: { ...img.platform } })),
  };
  if (opts.annotations && format === 'oci') manifest.annotations = opts.annotations;
  const bytes = Buffer.from(JSON.stringify(manifest, null, 2));
  return { format, mediaType, digest: sha256(bytes), size: bytes.length, bytes, manifest, images };
}
