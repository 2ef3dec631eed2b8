/**
 * The benchmark's content: generated images pushed to the upstream registry, and the same files laid out for nginx.
 * - bench/big:1       one image of 3 incompressible layers (50, 100 and 20 MiB by default) and a config;
 * - bench/multi:latest a multi-arch OCI index (linux/amd64 + linux/arm64) of small images;
 * - small/img-NNN:v1  `smallCount` small images (2 unique layers of 16 and 96 KiB each).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  makeImage,
  makeIndex,
  makeLayer,
  pushImage,
  pushIndex,
  type Image,
  type Index,
} from '../../../test/helpers/index.js';
import { MiB, mapLimit } from './stats.js';

export interface SeededImage {
  repo: string;
  tag: string;
  image: Image;
  /** Manifest + config + layers, bytes. */
  totalBytes: number;
}

export interface Seed {
  big: SeededImage;
  /** Same shape as `big`, other bytes: what scenario 1 pulls first, so its measured pull is not a process's first. */
  warm?: SeededImage;
  multi: { repo: string; tag: string; index: Index };
  small: SeededImage[];
}

export interface SeedOptions {
  /** Layer sizes of the big image in MiB (default 50, 100, 20). */
  bigLayersMiB?: number[];
  smallCount?: number;
  /** Also a second image of the big image's shape (`warm`, scenario 1). */
  warm?: boolean;
  /** Distinguishes runs (the soak seeds extra images with other prefixes). */
  seedPrefix?: string;
}

export function imageBytes(img: Image): number {
  return img.size + img.config.size + img.layers.reduce((a, l) => a + l.size, 0);
}

export function generateSeed(opts: SeedOptions = {}): Seed {
  const p = opts.seedPrefix ?? 'regcache-bench';
  const sizes = opts.bigLayersMiB ?? [50, 100, 20];
  const bigLayers = sizes.map((s, i) => makeLayer({ randomBytes: Math.round(s * MiB), seed: `${p}-big-${i}` }));
  const big = makeImage({ format: 'oci', layers: bigLayers, labels: { bench: 'big' } });
  const warm = opts.warm
    ? makeImage({ format: 'oci', layers: sizes.map((s, i) => makeLayer({ randomBytes: Math.round(s * MiB), seed: `${p}-warm-${i}` })), labels: { bench: 'warm' } })
    : undefined;

  const arches = ['amd64', 'arm64'];
  const multiImages = arches.map((arch) =>
    makeImage({ format: 'oci', arch, layers: [makeLayer({ randomBytes: 256 * 1024, seed: `${p}-multi-${arch}` })], labels: { bench: `multi-${arch}` } }),
  );
  const index = makeIndex('oci', multiImages);

  const small: SeededImage[] = [];
  for (let i = 0; i < (opts.smallCount ?? 200); i++) {
    const layers = [
      makeLayer({ randomBytes: 16 * 1024, seed: `${p}-small-${i}-a` }),
      makeLayer({ randomBytes: 96 * 1024, seed: `${p}-small-${i}-b` }),
    ];
    const image = makeImage({ format: 'oci', layers, labels: { bench: `small-${i}` } });
    small.push({ repo: `small/img-${String(i).padStart(3, '0')}`, tag: 'v1', image, totalBytes: imageBytes(image) });
  }
  return {
    big: { repo: 'bench/big', tag: '1', image: big, totalBytes: imageBytes(big) },
    ...(warm ? { warm: { repo: 'bench/warm', tag: '1', image: warm, totalBytes: imageBytes(warm) } } : {}),
    multi: { repo: 'bench/multi', tag: 'latest', index },
    small,
  };
}

export async function pushSeed(registryUrl: string, seed: Seed, concurrency = 8): Promise<void> {
  await pushImage(registryUrl, seed.big.repo, seed.big.tag, seed.big.image);
  if (seed.warm) await pushImage(registryUrl, seed.warm.repo, seed.warm.tag, seed.warm.image);
  await pushIndex(registryUrl, seed.multi.repo, seed.multi.tag, seed.multi.index);
  await mapLimit(seed.small, concurrency, (s) => pushImage(registryUrl, s.repo, s.tag, s.image));
}

/**
 * Writes the same blobs and manifests as files under `root` at their registry paths
 * (/v2/<repo>/blobs/<digest>, /v2/<repo>/manifests/<tag>) for nginx to serve statically.
 */
export function writeStaticTree(root: string, seed: Seed): void {
  const put = (repo: string, kind: 'blobs' | 'manifests', name: string, bytes: Buffer): void => {
    const dir = join(root, 'v2', repo, kind);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, name), bytes);
  };
  const putImage = (repo: string, tag: string | undefined, img: Image): void => {
    for (const b of [img.config, ...img.layers]) put(repo, 'blobs', b.digest, b.bytes);
    put(repo, 'manifests', img.digest, img.bytes);
    if (tag !== undefined) put(repo, 'manifests', tag, img.bytes);
  };
  putImage(seed.big.repo, seed.big.tag, seed.big.image);
  for (const img of seed.multi.index.images) putImage(seed.multi.repo, undefined, img);
  put(seed.multi.repo, 'manifests', seed.multi.tag, seed.multi.index.bytes);
  put(seed.multi.repo, 'manifests', seed.multi.index.digest, seed.multi.index.bytes);
  for (const s of seed.small) putImage(s.repo, s.tag, s.image);
}
