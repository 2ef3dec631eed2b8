/**
 * Typed remote OCI operations on one registry, pull and push, over the transport in
 * client.ts (auth, redirects, timeouts, health). Every caller — the proxy, sync jobs, the
 * copy command — goes through these methods; none builds a /v2/ path or reads a status
 * itself. A non-2xx answer becomes a RemoteError carrying the status, its classification
 * (classify.ts) and the upstream's own error code and message.
 */
import type { Readable } from 'node:stream';
import { DEFAULT_MANIFEST_ACCEPT, bareMediaType } from '../protocol/media-types.js';
import { BodyTooLargeError, discard, readAtMost } from './body.js';
import { classify, type FailureClass } from './classify.js';
import type { UpstreamClient, UpstreamRequest, UpstreamResponse } from './client.js';
import { UpstreamError } from './errors.js';

/** The upstream's own error entries, as far as they could be read. */
export interface RemoteErrorEntry {
  code: string;
  message: string;
}

export class RemoteError extends Error {
  override name = 'RemoteError';
  readonly failure: FailureClass;

  constructor(
    readonly host: string,
    readonly status: number,
    message: string,
    readonly errors: RemoteErrorEntry[] = [],
    readonly retryAfter?: string,
  ) {
    super(message);
    this.failure = classify(status).class;
  }
}

export interface RemoteManifestHead {
  /** From Docker-Content-Digest, when given. */
  digest: string | undefined;
  mediaType: string;
  /** From Content-Length, when given. */
  size: number | undefined;
  /** Docker Hub's `ratelimit-remaining` (`76;w=21600` -> 76), when given. */
  rateLimitRemaining?: number;
}

export interface RemoteManifest extends RemoteManifestHead {
  body: Buffer;
}

export interface RemoteBlob {
  body: Readable;
  size: number | undefined;
}

export interface TagPage {
  tags: string[];
  /** Query of the next page, from the upstream's Link header (never its URL). */
  next?: { n?: string; last: string };
}

/** Error bodies are read only when small and complete; anything else is discarded at once. */
const ERROR_BODY_LIMIT = 8 * 1024;

function header(res: UpstreamResponse, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function lengthOf(res: UpstreamResponse): number | undefined {
  const len = header(res, 'content-length');
  return len !== undefined && /^\d+$/.test(len) ? Number(len) : undefined;
}

/** Extracts n and last of an upstream `Link: <...>; rel="next"`; the URL itself is never followed. */
export function nextPage(link: string | undefined): { n?: string; last: string } | undefined {
  if (!link) return undefined;
  const m = /<([^>]*)>\s*;\s*rel="?next"?/i.exec(link);
  if (!m) return undefined;
  let url: URL;
  try {
    url = new URL(m[1]!, 'http://upstream.invalid');
  } catch {
    return undefined;
  }
  const last = url.searchParams.get('last');
  if (last === null) return undefined;
  const n = url.searchParams.get('n');
  return n === null ? { last } : { n, last };
}

export class RegistryClient {
  constructor(readonly transport: UpstreamClient) {}

  get host(): string {
    return this.transport.host;
  }

  get health(): UpstreamClient['health'] {
    return this.transport.health;
  }

  private send(req: UpstreamRequest): Promise<UpstreamResponse> {
    return this.transport.request(req);
  }

  /** Turns a non-2xx answer into a RemoteError (reading a small error body for its message). */
  private async fail(res: UpstreamResponse): Promise<never> {
    const entries: RemoteErrorEntry[] = [];
    const len = lengthOf(res);
    if (len !== undefined && len <= ERROR_BODY_LIMIT && res.status !== 0) {
      try {
        const doc = JSON.parse((await readAtMost(res.body, ERROR_BODY_LIMIT)).toString('utf8')) as { errors?: unknown };
        if (Array.isArray(doc.errors)) {
          for (const e of doc.errors.slice(0, 4) as Array<{ code?: unknown; message?: unknown }>) {
            entries.push({ code: String(e.code ?? '').slice(0, 64), message: String(e.message ?? '').slice(0, 500) });
          }
        }
      } catch {
        // Not a registry error body: the status says enough.
      }
    } else {
      discard(res.body);
    }
    const said = entries.length ? `: ${entries.map((e) => e.message || e.code).join('; ')}` : '';
    throw new RemoteError(this.host, res.status, `upstream ${this.host} answered ${res.status}${said}`, entries, header(res, 'retry-after'));
  }

  private async expect(res: UpstreamResponse, ...ok: number[]): Promise<UpstreamResponse> {
    if (ok.includes(res.status)) return res;
    return this.fail(res);
  }

  /** HEAD of a manifest (free on Docker Hub's rate limit). */
  async headManifest(repo: string, reference: string, accept: string = DEFAULT_MANIFEST_ACCEPT): Promise<RemoteManifestHead> {
    const res = await this.expect(await this.send({ method: 'HEAD', path: `/v2/${repo}/manifests/${reference}`, repo, headers: { accept } }), 200);
    discard(res.body);
    const out: RemoteManifestHead = { digest: header(res, 'docker-content-digest'), mediaType: bareMediaType(header(res, 'content-type')), size: lengthOf(res) };
    const remaining = /^\s*(\d+)/.exec(header(res, 'ratelimit-remaining') ?? '');
    if (remaining) out.rateLimitRemaining = Number(remaining[1]);
    return out;
  }

  /** GET of a manifest, read up to `maxSize` bytes (refused beyond, without reading the rest). */
  async getManifest(repo: string, reference: string, opts: { accept?: string; maxSize: number }): Promise<RemoteManifest> {
    const res = await this.expect(await this.send({
      method: 'GET', path: `/v2/${repo}/manifests/${reference}`, repo, headers: { accept: opts.accept ?? DEFAULT_MANIFEST_ACCEPT },
    }), 200);
    const size = lengthOf(res);
    if (size !== undefined && size > opts.maxSize) {
      res.body.destroy();
      throw new BodyTooLargeError(`manifest is larger than the ${opts.maxSize}-byte limit`);
    }
    const body = await readAtMost(res.body, opts.maxSize);
    return { digest: header(res, 'docker-content-digest'), mediaType: bareMediaType(header(res, 'content-type')), size, body };
  }

  async headBlob(repo: string, digest: string): Promise<{ size: number | undefined }> {
    const res = await this.expect(await this.send({ method: 'HEAD', path: `/v2/${repo}/blobs/${digest}`, repo }), 200);
    discard(res.body);
    return { size: lengthOf(res) };
  }

  /** Whether `repo` has `digest` (manifest or blob): HEAD, 404 = false. */
  async has(repo: string, kind: 'manifest' | 'blob', digest: string, accept: string = DEFAULT_MANIFEST_ACCEPT): Promise<boolean> {
    const res = await this.send({
      method: 'HEAD', path: `/v2/${repo}/${kind}s/${digest}`, repo, ...(kind === 'manifest' ? { headers: { accept } } : {}),
    });
    if (res.status === 404) {
      discard(res.body);
      return false;
    }
    await this.expect(res, 200);
    discard(res.body);
    return true;
  }

  /**
   * GET of a blob: the body streams; the caller verifies it. `lend`: the caller takes the body
   * lent when it is a SocketBody (upstream/socket-body.ts; the fill does).
   */
  async getBlob(repo: string, digest: string, signal?: AbortSignal, lend = false): Promise<RemoteBlob> {
    const req: UpstreamRequest = { method: 'GET', path: `/v2/${repo}/blobs/${digest}`, repo, ...(lend ? { lendBody: true } : {}) };
    if (signal) req.signal = signal;
    const res = await this.expect(await this.send(req), 200);
    return { body: res.body, size: lengthOf(res) };
  }

  /** One page of the tag list. */
  async listTags(repo: string, opts: { n?: number | string; last?: string; maxBytes: number }): Promise<TagPage> {
    const q = new URLSearchParams();
    if (opts.n !== undefined) q.set('n', String(opts.n));
    if (opts.last !== undefined) q.set('last', opts.last);
    const qs = q.size ? `?${q}` : '';
    const res = await this.expect(await this.send({ method: 'GET', path: `/v2/${repo}/tags/list${qs}`, repo }), 200);
    const raw = await readAtMost(res.body, opts.maxBytes);
    let doc: { tags?: unknown };
    try {
      doc = JSON.parse(raw.toString('utf8')) as { tags?: unknown };
    } catch {
      throw new UpstreamError('protocol', `upstream ${this.host} sent an invalid tag list`);
    }
    const tags = Array.isArray(doc.tags) ? doc.tags.filter((t): t is string => typeof t === 'string') : [];
    const next = nextPage(header(res, 'link'));
    return next ? { tags, next } : { tags };
  }

  /** Every tag, following the upstream's pages (at most `maxPages`). */
  async allTags(repo: string, opts: { pageSize?: number; maxBytes: number; maxPages?: number }): Promise<string[]> {
    const out: string[] = [];
    let last: string | undefined;
    for (let page = 0; page < (opts.maxPages ?? 1000); page++) {
      const p: TagPage = await this.listTags(repo, { ...(opts.pageSize ? { n: opts.pageSize } : {}), ...(last !== undefined ? { last } : {}), maxBytes: opts.maxBytes });
      out.push(...p.tags);
      if (!p.next || p.next.last === last) return out;
      last = p.next.last;
    }
    return out;
  }

  /** Every repository of the upstream's catalog under `prefix/` (paged, at most `maxPages`). */
  async catalog(opts: { prefix?: string; pageSize?: number; maxBytes: number; maxPages?: number }): Promise<string[]> {
    const out: string[] = [];
    let last: string | undefined;
    for (let page = 0; page < (opts.maxPages ?? 1000); page++) {
      const q = new URLSearchParams();
      if (opts.pageSize) q.set('n', String(opts.pageSize));
      if (last !== undefined) q.set('last', last);
      const res = await this.expect(await this.send({ method: 'GET', path: `/v2/_catalog${q.size ? `?${q}` : ''}` }), 200);
      let doc: { repositories?: unknown };
      try {
        doc = JSON.parse((await readAtMost(res.body, opts.maxBytes)).toString('utf8')) as { repositories?: unknown };
      } catch {
        throw new UpstreamError('protocol', `upstream ${this.host} sent an invalid catalog`);
      }
      const repos = Array.isArray(doc.repositories) ? doc.repositories.filter((r): r is string => typeof r === 'string') : [];
      out.push(...(opts.prefix === undefined ? repos : repos.filter((r) => r.startsWith(`${opts.prefix}/`))));
      const next = nextPage(header(res, 'link'));
      if (!next || next.last === last) return out;
      last = next.last;
    }
    return out;
  }

  /** The referrers index of `digest` as the upstream sends it. */
  async referrers(repo: string, digest: string, artifactType: string | undefined, maxBytes: number): Promise<{ body: Buffer; contentType: string }> {
    const qs = artifactType !== undefined ? `?${new URLSearchParams({ artifactType })}` : '';
    const res = await this.expect(await this.send({ method: 'GET', path: `/v2/${repo}/referrers/${digest}${qs}`, repo }), 200);
    const body = await readAtMost(res.body, maxBytes);
    return { body, contentType: bareMediaType(header(res, 'content-type')) || 'application/vnd.oci.image.index.v1+json' };
  }

  // --- push ---

  /**
   * Starts an upload, or mounts `digest` from repository `from` of the same registry. A
   * mount the registry cannot serve answers 202 with an upload, as the spec says.
   */
  async startUpload(repo: string, mount?: { digest: string; from: string }): Promise<{ mounted: true } | { mounted: false; location: string }> {
    const q = mount ? `?${new URLSearchParams({ mount: mount.digest, from: mount.from })}` : '';
    const res = await this.expect(await this.send({ method: 'POST', path: `/v2/${repo}/blobs/uploads/${q}`, repo, push: true, headers: { 'content-length': '0' } }), 201, 202);
    discard(res.body);
    if (res.status === 201) return { mounted: true };
    return { mounted: false, location: this.uploadPath(res, repo) };
  }

  /** Sends one chunk at `offset` (a Buffer, or a stream of exactly `length` bytes); returns the next upload location. */
  async appendUpload(repo: string, location: string, chunk: Buffer | Readable, offset: number, length?: number): Promise<string> {
    const len = Buffer.isBuffer(chunk) ? chunk.length : length;
    if (len === undefined) throw new TypeError('appendUpload: a streamed chunk needs its length');
    const res = await this.expect(await this.send({
      method: 'PATCH', path: location, repo, push: true, body: chunk,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(len), 'content-range': `${offset}-${offset + len - 1}` },
    }), 202);
    discard(res.body);
    return this.uploadPath(res, repo);
  }

  /** Completes an upload with its digest, sending a last chunk (or the whole blob) in the body. */
  async finishUpload(repo: string, location: string, digest: string, body?: Buffer | Readable, length?: number): Promise<void> {
    const sep = location.includes('?') ? '&' : '?';
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (body === undefined) headers['content-length'] = '0';
    else if (Buffer.isBuffer(body)) headers['content-length'] = String(body.length);
    else if (length !== undefined) headers['content-length'] = String(length);
    const req: UpstreamRequest = { method: 'PUT', path: `${location}${sep}${new URLSearchParams({ digest })}`, repo, push: true, headers };
    if (body !== undefined) req.body = body;
    const res = await this.expect(await this.send(req), 201, 204);
    discard(res.body);
  }

  /** PUT of a manifest by tag or digest; returns the digest the registry reports. */
  async putManifest(repo: string, reference: string, body: Buffer, mediaType: string): Promise<string | undefined> {
    const res = await this.expect(await this.send({
      method: 'PUT', path: `/v2/${repo}/manifests/${reference}`, repo, push: true, body,
      headers: { 'content-type': mediaType, 'content-length': String(body.length) },
    }), 201, 204);
    discard(res.body);
    return header(res, 'docker-content-digest');
  }

  /**
   * An upload Location as a path on this registry. A Location on another origin is refused:
   * regcache sends writes only to the registry it was configured for.
   */
  private uploadPath(res: UpstreamResponse, _repo: string): string {
    const loc = header(res, 'location');
    if (!loc) throw new UpstreamError('protocol', `upstream ${this.host} sent no upload Location`);
    const base = new URL(this.transport.baseUrl.href);
    const url = new URL(loc, base);
    if (url.origin !== base.origin) throw new UpstreamError('protocol', `upstream ${this.host} sent an upload Location on another host (${url.host})`);
    const prefix = base.pathname.replace(/\/$/, '');
    const path = url.pathname.startsWith(prefix + '/v2/') ? url.pathname.slice(prefix.length) : url.pathname;
    if (!path.startsWith('/v2/')) throw new UpstreamError('protocol', `upstream ${this.host} sent an upload Location outside /v2/`);
    return path + url.search;
  }
}
