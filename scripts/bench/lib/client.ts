/**
 * A minimal image-pull client on undici (as containerd pulls): manifest by tag (an index is resolved to the
 * linux/amd64 entry), then config and every layer in parallel. Bodies are always read to the end and their length
 * checked; with `verify` every body is also hashed and compared with its digest.
 */
import { createHash } from 'node:crypto';
import { Agent, request } from 'undici';

export const ACCEPT_MANIFESTS = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);

/** One Agent per scenario: unlimited connections per origin, generous timeouts (cold pulls through a slow proxy). */
export function newAgent(): Agent {
  return new Agent({
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 60_000,
    headersTimeout: 300_000,
    bodyTimeout: 300_000,
    connect: { timeout: 10_000 },
  });
}

export class PullError extends Error {
  override name = 'PullError';
}

export interface Descriptor {
  digest: string;
  size: number;
  mediaType?: string;
}

function sha256Hex(digest: string): string {
  if (!digest.startsWith('sha256:')) throw new PullError(`unsupported digest ${digest}`);
  return digest.slice(7);
}

/** GET a blob, read it fully; checks the length, and the sha256 with verify. Returns the byte count. */
export async function getBlob(agent: Agent, base: string, repo: string, d: Descriptor, verify: boolean): Promise<number> {
  const url = `${base}/v2/${repo}/blobs/${d.digest}`;
  const res = await request(url, { dispatcher: agent, method: 'GET' });
  if (res.statusCode !== 200) {
    const text = await res.body.text().catch(() => '');
    throw new PullError(`GET ${url}: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
  }
  const h = verify ? createHash('sha256') : undefined;
  let n = 0;
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      n += chunk.length;
      h?.update(chunk);
    }
  } catch (err) {
    throw new PullError(`GET ${url}: body failed after ${n} bytes: ${(err as Error).message}`);
  }
  if (n !== d.size) throw new PullError(`GET ${url}: ${n} bytes, expected ${d.size}`);
  if (h && h.digest('hex') !== sha256Hex(d.digest)) throw new PullError(`GET ${url}: content does not hash to its digest`);
  return n;
}

export interface ManifestAnswer {
  bytes: Buffer;
  mediaType: string;
  digest: string;
}

/**
 * GET a manifest by tag or digest. The body must hash to `expectDigest` when given (else to the
 * Docker-Content-Digest header when there is one, else to the digest reference).
 */
export async function getManifest(agent: Agent, base: string, repo: string, ref: string, expectDigest?: string): Promise<ManifestAnswer> {
  const url = `${base}/v2/${repo}/manifests/${ref}`;
  const res = await request(url, { dispatcher: agent, method: 'GET', headers: { accept: ACCEPT_MANIFESTS } });
  const bytes = Buffer.from(await res.body.arrayBuffer());
  if (res.statusCode !== 200) throw new PullError(`GET ${url}: HTTP ${res.statusCode} ${bytes.toString('utf8').slice(0, 200)}`);
  const actual = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const header = res.headers['docker-content-digest'];
  const want = expectDigest ?? (typeof header === 'string' ? header : ref.startsWith('sha256:') ? ref : undefined);
  if (want !== undefined && actual !== want) throw new PullError(`GET ${url}: manifest hashes to ${actual}, expected ${want}`);
  const ct = res.headers['content-type'];
  let mediaType = typeof ct === 'string' ? ct.split(';')[0]!.trim() : '';
  if (!mediaType || mediaType === 'application/octet-stream' || mediaType === 'application/json') {
    mediaType = (JSON.parse(bytes.toString('utf8')) as { mediaType?: string }).mediaType ?? '';
  }
  return { bytes, mediaType, digest: actual };
}

export interface PullResult {
  /** Every body byte read (manifests included). */
  bytes: number;
  requests: number;
}

export interface PullOptions {
  verify: boolean;
  /** The manifest digest the tag must resolve to. */
  expectDigest?: string;
}

/** Pulls one image: manifest (index -> linux/amd64 manifest), then config and layers in parallel. */
export async function pullImage(agent: Agent, base: string, repo: string, ref: string, opts: PullOptions): Promise<PullResult> {
  let m = await getManifest(agent, base, repo, ref, opts.expectDigest);
  let bytes = m.bytes.length;
  let requests = 1;
  if (INDEX_TYPES.has(m.mediaType)) {
    const idx = JSON.parse(m.bytes.toString('utf8')) as { manifests: Array<Descriptor & { platform?: { os?: string; architecture?: string } }> };
    const pick = idx.manifests.find((x) => x.platform?.os === 'linux' && x.platform?.architecture === 'amd64') ?? idx.manifests[0];
    if (!pick) throw new PullError(`${repo}:${ref}: empty index`);
    m = await getManifest(agent, base, repo, pick.digest, pick.digest);
    bytes += m.bytes.length;
    requests++;
  }
  const man = JSON.parse(m.bytes.toString('utf8')) as { config: Descriptor; layers: Descriptor[] };
  const blobs = [man.config, ...man.layers];
  const sizes = await Promise.all(blobs.map((d) => getBlob(agent, base, repo, d, opts.verify)));
  for (const s of sizes) bytes += s;
  return { bytes, requests: requests + blobs.length };
}
