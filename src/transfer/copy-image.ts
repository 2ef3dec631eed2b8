/**
 * copyImage: one image (a manifest, or an index with its children) from a source
 * repository to a destination repository, in the order that keeps the destination valid
 * at every moment: blobs first (HEAD first, mount, upload), then child manifests by
 * digest, then the top manifest, by tag last. Manifests are sent byte for byte as the
 * source served them, so every digest is preserved; only a platform filter changes an
 * index (and the report then says so and gives the new digest).
 */
import { createHash } from 'node:crypto';
import { digestAlgorithm } from '../protocol/grammar.js';
import { bareMediaType, DOCKER_MANIFEST_LIST, OCI_INDEX, parseManifest } from '../protocol/media-types.js';
import { RemoteError } from '../upstream/registry-client.js';
import type { FailureClass } from '../upstream/classify.js';
import { Limiter } from './limiter.js';
import { filterIndex, platformOf, platformString, type PlatformFilter } from './platforms.js';
import { transferBlob, type BlobOutcome, type BlobRef, type BlobTransferOptions, type RepoEndpoint } from './blob-transfer.js';
import { withRetry } from './retry.js';

/** A copy failure that another attempt would not fix (carries a class, as RemoteError does). */
export class CopyError extends Error {
  override name = 'CopyError';
  constructor(message: string, readonly failure: FailureClass = 'protocol') {
    super(message);
  }
}

/** Largest manifest read from a source (containerd's own limit is about 4 MiB). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const MAX_DEPTH = 2;

export interface CopyImageOptions extends BlobTransferOptions {
  platforms?: PlatformFilter;
  keepManifestList: boolean;
  /** Blob transfers at once into the destination registry (shared across the run's copies). */
  limiter: Limiter;
}

export interface ImageReport {
  /** Digest of the source manifest the reference resolved to. */
  digest: string;
  /** Digest written at the destination: the source's, unless a platform filter made a new index. */
  destinationDigest: string;
  mediaType: string;
  /** Platforms copied, when the source is an index. */
  platforms?: string[];
  manifests: { sent: number; present: number };
  blobs: { sent: number; mounted: number; present: number };
  bytes: { sent: number; present: number };
  /** The destination tag already pointed at the digest. */
  upToDate: boolean;
  notes: string[];
}

interface Node {
  digest: string;
  mediaType: string;
  body: Buffer;
  blobs: BlobRef[];
  children: Node[];
}

function digestOf(body: Buffer, like: string): string {
  const alg = digestAlgorithm(like);
  return `${alg}:${createHash(alg).update(body).digest('hex')}`;
}

function isIndex(mediaType: string): boolean {
  return mediaType === OCI_INDEX || mediaType === DOCKER_MANIFEST_LIST;
}

export async function copyImage(source: RepoEndpoint, sink: RepoEndpoint & { tag?: string }, reference: string, o: CopyImageOptions): Promise<ImageReport> {
  const retry = { ...o.retry, ...(o.signal ? { signal: o.signal } : {}) };
  const notes: string[] = [];

  const fetch = async (ref: string, depth: number, expected?: string): Promise<Node> => {
    const m = await withRetry(() => source.client.getManifest(source.repo, ref, { maxSize: MAX_MANIFEST_BYTES }), retry);
    const digest = digestOf(m.body, expected ?? m.digest ?? 'sha256:');
    if (expected !== undefined && digest !== expected) throw new CopyError(`${source.registry}/${source.repo}: manifest ${expected} has digest ${digest}`);
    const parsed = parseManifest(m.body, m.mediaType);
    if (!parsed) throw new CopyError(`${source.registry}/${source.repo}: manifest ${ref} is not JSON`);
    const mediaType = bareMediaType(m.mediaType) || parsed.mediaType;
    const node: Node = { digest, mediaType, body: m.body, blobs: [], children: [] };
    for (const b of parsed.blobs) {
      if (typeof b.size !== 'number') throw new CopyError(`${source.registry}/${source.repo}: blob ${b.digest} in ${digest} has no size`);
      node.blobs.push({ digest: b.digest, size: b.size });
    }
    if (parsed.manifests.length && depth >= MAX_DEPTH) throw new CopyError(`${source.registry}/${source.repo}: indexes nested deeper than ${MAX_DEPTH}`);
    return node;
  };

  const top = await fetch(reference, 0, reference.includes(':') ? reference : undefined);
  let topBody = top.body;
  let topDigest = top.digest;
  let topMediaType = top.mediaType;
  let fallbackIndex: { body: Buffer; digest: string } | undefined;
  let platforms: string[] | undefined;

  if (isIndex(top.mediaType)) {
    const doc = JSON.parse(top.body.toString('utf8')) as { manifests?: unknown[] };
    const entries = (doc.manifests ?? []) as Array<{ digest: string; platform?: unknown }>;
    const chosen = o.platforms ? entries.filter((e) => o.platforms!.matches(platformOf(e))) : entries;
    if (chosen.length === 0) throw new CopyError(`no manifest in ${top.digest} matches the platforms ${o.platforms!.text}`, 'not-found');
    platforms = chosen.map((e) => { const p = platformOf(e); return p ? platformString(p) : 'unknown'; });
    for (const e of chosen) {
      const child = await fetch(e.digest, 1, e.digest);
      if (isIndex(child.mediaType)) {
        const inner = (JSON.parse(child.body.toString('utf8')) as { manifests?: Array<{ digest: string }> }).manifests ?? [];
        for (const g of inner) child.children.push(await fetch(g.digest, 2, g.digest));
      }
      top.children.push(child);
    }
    if (o.platforms && chosen.length < entries.length) {
      const filtered = filterIndex(top.body, new Set(chosen.map((e) => e.digest)));
      const f = { body: filtered, digest: digestOf(filtered, top.digest) };
      if (o.keepManifestList) fallbackIndex = f;
      else if (chosen.length === 1) {
        topBody = top.children[0]!.body;
        topDigest = top.children[0]!.digest;
        topMediaType = top.children[0]!.mediaType;
        notes.push(`platform filter kept one manifest: ${sink.repo} gets ${topDigest} (${platforms[0]}) instead of the index ${top.digest}`);
      } else {
        topBody = f.body;
        topDigest = f.digest;
        notes.push(`platform filter wrote a new index ${f.digest} (source index ${top.digest})`);
      }
    }
  }

  // Everything to send, children before parents.
  const order: Node[] = [];
  const visit = (n: Node): void => { for (const c of n.children) visit(c); order.push(n); };
  visit(top);
  const blobs = new Map<string, BlobRef>();
  for (const n of order) for (const b of n.blobs) blobs.set(b.digest, b);

  const report: ImageReport = {
    digest: top.digest, destinationDigest: topDigest, mediaType: top.mediaType,
    manifests: { sent: 0, present: 0 }, blobs: { sent: 0, mounted: 0, present: 0 }, bytes: { sent: 0, present: 0 },
    upToDate: false, notes,
  };
  if (platforms) report.platforms = platforms;

  const outcomes = await Promise.all([...blobs.values()].map((b) => o.limiter.run(async (): Promise<[BlobRef, BlobOutcome]> => [b, await transferBlob(source, sink, b, o)])));
  for (const [b, out] of outcomes) {
    if (out === 'present') { report.blobs.present++; report.bytes.present += b.size; }
    else if (out === 'mounted' || out === 'would-mount') report.blobs.mounted++;
    else { report.blobs.sent++; report.bytes.sent += b.size; }
  }

  const putManifest = async (ref: string, body: Buffer, mediaType: string): Promise<void> => {
    if (o.dryRun) return;
    await withRetry(() => sink.client.putManifest(sink.repo, ref, body, mediaType), retry);
  };
  const hasManifest = (digest: string): Promise<boolean> => withRetry(() => sink.client.has(sink.repo, 'manifest', digest), retry);

  // Child manifests by digest, so the index that names them is valid when it arrives.
  for (const n of order) {
    if (n === top) continue;
    if (!o.force && await hasManifest(n.digest)) { report.manifests.present++; continue; }
    await putManifest(n.digest, n.body, n.mediaType);
    report.manifests.sent++;
  }

  // The top manifest, by tag last (or by digest when the mapping gives no tag).
  const ref = sink.tag ?? topDigest;
  if (!o.force) {
    const head = await withRetry(async () => {
      try {
        return await sink.client.headManifest(sink.repo, ref);
      } catch (err) {
        if (err instanceof RemoteError && err.status === 404) return undefined;
        throw err;
      }
    }, retry);
    if (head?.digest !== undefined && (head.digest === topDigest || head.digest === fallbackIndex?.digest)) {
      if (head.digest !== topDigest) report.destinationDigest = head.digest;
      report.manifests.present++;
      report.upToDate = true;
      return report;
    }
  }
  try {
    await putManifest(ref, topBody, topMediaType);
  } catch (err) {
    // An index whose other children are absent: some registries take it (digest kept), others refuse it.
    if (!fallbackIndex || !(err instanceof RemoteError) || err.failure === 'throttled' || err.failure === 'server') throw err;
    const code = err.errors[0]?.code ?? String(err.status);
    notes.push(`${sink.registry} refused the unchanged index ${top.digest} without its other platforms (${code}); wrote a filtered index ${fallbackIndex.digest}`);
    report.destinationDigest = fallbackIndex.digest;
    await putManifest(ref, fallbackIndex.body, top.mediaType);
  }
  report.manifests.sent++;
  return report;
}
