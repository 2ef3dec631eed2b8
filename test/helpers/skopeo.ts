/**
 * skopeo as the test's image client. Registries are plain HTTP on loopback, so every call passes
 * `--src-tls-verify=false` / `--dest-tls-verify=false` (skopeo then falls back from HTTPS to HTTP), and
 * `--insecure-policy` plus an empty per-call auth file so the machine's policy and credentials do not matter.
 *
 * Note: copying a Docker schema2 image or list to `oci:` converts it to OCI (new digests); use `dir:` (or
 * skopeoPullDigests with layout 'dir') to compare Docker manifests byte for byte.
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand, type RunResult } from './children.js';
import { sha256 } from './digest.js';
import { removeTmpDir, tmpDir } from './tmp.js';

export interface SkopeoResult {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface SkopeoCopyOptions {
  /** --all: copy every image of an index/list. */
  all?: boolean;
  /** `user:password` for the source registry. */
  srcCreds?: string;
  /** `user:password` for the destination registry. */
  destCreds?: string;
  /** Platform to pick from an index when not --all (default: the machine's). */
  arch?: string;
  os?: string;
  /** --preserve-digests: fail instead of converting manifests. */
  preserveDigests?: boolean;
  /** Extra `skopeo copy` flags. */
  extraArgs?: string[];
  /** Default 120 s. */
  timeoutMs?: number;
}

async function runSkopeo(global: string[], args: string[], timeoutMs: number): Promise<SkopeoResult & { stdoutBytes: Buffer }> {
  const dir = tmpDir('regcache-skopeo-');
  try {
    const authfile = join(dir, 'auth.json');
    writeFileSync(authfile, '{"auths":{}}\n');
    const [cmd, ...rest] = args;
    const r: RunResult = await runCommand(
      'skopeo',
      ['--insecure-policy', '--tmpdir', dir, ...global, cmd!, '--authfile', authfile, ...rest],
      { timeoutMs, env: { ...process.env, TMPDIR: dir } },
    );
    return { code: r.code, stdout: r.stdout, stdoutBytes: r.stdoutBytes, stderr: r.stderr, timedOut: r.timedOut };
  } finally {
    await removeTmpDir(dir);
  }
}

/** `skopeo copy SRC DEST` (e.g. `docker://127.0.0.1:PORT/repo:tag` to `oci:/dir:tag`). Never throws on failure. */
export async function skopeoCopy(src: string, dest: string, opts: SkopeoCopyOptions = {}): Promise<SkopeoResult> {
  const global: string[] = [];
  if (opts.arch) global.push('--override-arch', opts.arch);
  if (opts.os) global.push('--override-os', opts.os);
  const args = ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', '--retry-times', '0'];
  if (opts.all) args.push('--all');
  if (opts.srcCreds !== undefined) args.push('--src-creds', opts.srcCreds);
  if (opts.destCreds !== undefined) args.push('--dest-creds', opts.destCreds);
  if (opts.preserveDigests) args.push('--preserve-digests');
  args.push(...(opts.extraArgs ?? []), src, dest);
  const { stdoutBytes: _, ...r } = await runSkopeo(global, args, opts.timeoutMs ?? 120_000);
  return r;
}

/** `skopeo inspect --raw REF`: the manifest bytes exactly as served. Throws with skopeo's stderr on failure. */
export async function skopeoInspectRaw(ref: string, opts: { creds?: string; timeoutMs?: number } = {}): Promise<Buffer> {
  const args = ['inspect', '--raw', '--tls-verify=false', '--retry-times', '0'];
  if (opts.creds !== undefined) args.push('--creds', opts.creds);
  args.push(ref);
  const r = await runSkopeo([], args, opts.timeoutMs ?? 60_000);
  if (r.code !== 0) throw new Error(`skopeo inspect --raw ${ref} failed (code ${r.code}): ${r.stderr.trim()}`);
  return r.stdoutBytes;
}

export interface LayoutDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string; variant?: string };
  annotations?: Record<string, string>;
}

export interface OciLayoutInfo {
  /** Parsed index.json. */
  index: { manifests: LayoutDescriptor[] } & Record<string, unknown>;
  /** Descriptors listed in index.json (one per copied image or index). */
  manifests: LayoutDescriptor[];
  /** Every blob present under blobs/sha256, as `sha256:<hex>`, sorted. */
  blobs: string[];
  /** Reads a blob by digest. */
  readBlob(digest: string): Buffer;
}

/** Reads an `oci:DIR` layout written by skopeo. */
export function ociLayoutBlobs(dir: string): OciLayoutInfo {
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as OciLayoutInfo['index'];
  let blobs: string[] = [];
  try {
    blobs = readdirSync(join(dir, 'blobs', 'sha256')).map((h) => `sha256:${h}`).sort();
  } catch {
    /* no blobs */
  }
  return {
    index,
    manifests: index.manifests ?? [],
    blobs,
    readBlob: (digest) => readFileSync(join(dir, 'blobs', ...digest.split(':'))),
  };
}

export interface DirLayoutInfo {
  /** Top manifest bytes (manifest.json) and their digest. */
  manifest: Buffer;
  manifestDigest: string;
  /** With --all: digests of the per-instance manifests (`<hex>.manifest.json`). */
  instanceDigests: string[];
  /** Other content (layers, configs) as `sha256:<hex>`, sorted. */
  blobs: string[];
}

/** Reads a `dir:DIR` layout written by skopeo (manifests kept byte for byte, no format conversion). */
export function dirLayoutBlobs(dir: string): DirLayoutInfo {
  const manifest = readFileSync(join(dir, 'manifest.json'));
  const files = readdirSync(dir);
  const instanceDigests: string[] = [];
  const blobs: string[] = [];
  for (const f of files) {
    const inst = /^([0-9a-f]{64})\.manifest\.json$/.exec(f);
    if (inst) instanceDigests.push(`sha256:${inst[1]}`);
    else if (/^[0-9a-f]{64}$/.test(f)) blobs.push(`sha256:${f}`);
  }
  return { manifest, manifestDigest: sha256(manifest), instanceDigests: instanceDigests.sort(), blobs: blobs.sort() };
}

export interface PulledDigests extends SkopeoResult {
  /** Digest of the top manifest (image or index) as pulled. Undefined when the copy failed. */
  manifestDigest?: string;
  /** Child manifest digests (with `all`). */
  instanceDigests: string[];
  /** Config and layer digests pulled. */
  blobs: string[];
}

/**
 * Pulls `ref` (docker://...) into a temporary `dir:` layout, reports the digests and removes the directory.
 * `dir:` keeps manifests unconverted, so Docker and OCI digests both compare with the upstream's.
 */
export async function skopeoPullDigests(ref: string, opts: SkopeoCopyOptions = {}): Promise<PulledDigests> {
  const dir = tmpDir('regcache-pull-');
  try {
    const r = await skopeoCopy(ref, `dir:${dir}`, opts);
    if (r.code !== 0) return { ...r, instanceDigests: [], blobs: [] };
    const info = dirLayoutBlobs(dir);
    return { ...r, manifestDigest: info.manifestDigest, instanceDigests: info.instanceDigests, blobs: info.blobs };
  } finally {
    await removeTmpDir(dir);
  }
}
