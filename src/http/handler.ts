/**
 * The request handler shared by every listener (plain HTTP/1.1, HTTPS with h2, per-host
 * ports). Order: parse and check the grammar, check the method, route to an upstream,
 * then ask the cache. One log line and one metrics sample per request.
 */
import { ServerResponse } from 'node:http';
import { pipeline, type Readable } from 'node:stream';
import { isSelfWriting, type SelfWritingBody } from '../cache/blob-cache.js';
import type { Logger } from 'pino';
import type { RegistryCache } from '../cache/registry.js';
import type { Metrics, CacheResult } from '../metrics/metrics.js';
import { OciError } from '../protocol/errors.js';
import { parseAccept } from '../protocol/media-types.js';
import { resolveNamespace } from '../protocol/namespace.js';
import { parseTarget, type Endpoint } from '../protocol/paths.js';
import { abort, sendBuffer, sendError, sendJson, toOciError, type Req, type Res } from './respond.js';

export interface HandlerDeps {
  registry: RegistryCache;
  metrics: Metrics;
  log: Logger;
  /** Readiness check for /readyz. */
  ready(): { ok: boolean; checks: Record<string, string> };
  /** Optional access control: returns an error to send, or undefined to proceed. */
  authorize?(req: Req, endpoint: Endpoint): Promise<OciError | undefined>;
  /** Whether /metrics is served on this listener. */
  serveMetrics: boolean;
  defaultUpstream(): string | undefined;
}

interface RequestState {
  upstream: string;
  kind: string;
  cache?: CacheResult;
  bytes: number;
  error?: string;
}

const API_VERSION = 'registry/2.0';

/** Clients send the same few Accept headers over and over: parse each once. */
const acceptCache = new Map<string, string[]>();
function acceptedTypes(header: string | undefined): string[] {
  if (header === undefined) return [];
  let parsed = acceptCache.get(header);
  if (!parsed) {
    parsed = parseAccept(header);
    if (acceptCache.size >= 256) acceptCache.clear();
    acceptCache.set(header, parsed);
  }
  return parsed;
}

export function createHandler(deps: HandlerDeps, fixedHost?: string): (req: Req, res: Res) => void {
  return (req, res) => {
    const started = performance.now();
    const state: RequestState = { upstream: fixedHost ?? '-', kind: 'other', bytes: 0 };
    let logged = false;
    const done = (): void => {
      if (logged) return;
      logged = true;
      const seconds = (performance.now() - started) / 1000;
      // Bounded label values: any other method (HTTP/2 accepts any token) is 'other'.
      const method = req.method === 'GET' || req.method === 'HEAD' ? req.method : 'other';
      const complete = res.writableFinished;
      const status = complete ? res.statusCode : 499;
      if (state.kind !== 'health') {
        deps.metrics.requests.inc({ upstream: state.upstream, kind: state.kind, method, status: String(status) });
        deps.metrics.requestDuration.observe({ upstream: state.upstream, kind: state.kind, method }, seconds);
      }
      const line = {
        method: req.method, path: req.url, status, bytes: state.bytes, ms: Math.round(seconds * 10000) / 10,
        upstream: state.upstream, kind: state.kind, cache: state.cache, error: state.error,
        ...(complete ? {} : { aborted: true }),
      };
      if (state.kind === 'health') deps.log.debug(line, 'request');
      else deps.log.info(line, 'request');
    };
    res.once('finish', done);
    res.once('close', done);
    res.setHeader('docker-distribution-api-version', API_VERSION);
    handle(deps, fixedHost, req, res, state).catch((err: unknown) => {
      const oci = toOciError(err);
      if (oci.code === 'INTERNAL') deps.log.error({ err, path: req.url }, 'internal error');
      state.error = oci.code;
      sendError(req, res, oci);
    });
  };
}

async function handle(deps: HandlerDeps, fixedHost: string | undefined, req: Req, res: Res, state: RequestState): Promise<void> {
  const target = parseTarget(req.url ?? '/');
  const ep = target.endpoint;
  const method = req.method ?? 'GET';
  if (ep.kind === 'healthz' || ep.kind === 'readyz') {
    state.kind = 'health';
    if (ep.kind === 'healthz') return sendJson(req, res, 200, { status: 'ok' });
    const r = deps.ready();
    return sendJson(req, res, r.ok ? 200 : 503, { status: r.ok ? 'ready' : 'not ready', checks: r.checks });
  }
  if (ep.kind === 'metrics') {
    state.kind = 'metrics';
    if (!deps.serveMetrics) throw new OciError('NOT_FOUND', 'metrics are served on metrics.listen');
    const denied = await deps.authorize?.(req, ep);
    if (denied) throw denied;
    const text = await deps.metrics.registry.metrics();
    return sendBuffer(req, res, 200, Buffer.from(text), deps.metrics.registry.contentType);
  }
  if (method !== 'GET' && method !== 'HEAD') {
    state.kind = ep.kind === 'upload' ? 'upload' : ep.kind;
    throw new OciError('UNSUPPORTED', `${method} is not supported: regcache is a pull-through cache`, undefined, { headers: { allow: 'GET, HEAD' } });
  }
  const denied = await deps.authorize?.(req, ep);
  if (denied) throw denied;

  switch (ep.kind) {
    case 'base':
      state.kind = 'base';
      return sendJson(req, res, 200, {});
    case 'catalog': {
      state.kind = 'catalog';
      const n = ep.n ?? 1000;
      const repos = deps.registry.catalog(n + 1, ep.last);
      const page = repos.slice(0, n);
      const headers: Record<string, string> = {};
      if (repos.length > n && page.length > 0) {
        headers.link = `</v2/_catalog?${new URLSearchParams({ n: String(n), last: page[page.length - 1]! })}>; rel="next"`;
      }
      return sendBuffer(req, res, 200, Buffer.from(JSON.stringify({ repositories: page })), 'application/json', headers);
    }
    case 'upload':
      state.kind = 'upload';
      throw new OciError('UNSUPPORTED', 'pushing is not supported: regcache is a pull-through cache', undefined, { headers: { allow: 'GET, HEAD' } });
    default:
      break;
  }

  state.kind = ep.kind;
  const scope = resolveNamespace(ep.name, target.ns, { hosts: deps.registry.hosts, fixedHost, defaultHost: deps.defaultUpstream() });
  state.upstream = scope.upstream;
  if (target.ns !== undefined) res.setHeader('oci-namespace', scope.upstream);
  const m = method as 'GET' | 'HEAD';

  switch (ep.kind) {
    case 'manifest': {
      state.kind = 'manifest';
      const acceptRaw = req.headers.accept;
      const acceptHeader = Array.isArray(acceptRaw) ? acceptRaw.join(', ') : acceptRaw;
      const a = await deps.registry.manifest(scope, ep.reference, ep.isDigest, m, acceptHeader, acceptedTypes(acceptHeader));
      state.cache = a.source;
      res.statusCode = 200;
      res.setHeader('content-type', a.mediaType);
      res.setHeader('content-length', a.size);
      res.setHeader('docker-content-digest', a.digest);
      res.setHeader('etag', `"${a.digest}"`);
      if (m === 'HEAD' || !a.body) return void res.end();
      state.bytes = a.body.length;
      deps.metrics.bytesServed.inc({ source: a.source === 'hit' || a.source === 'revalidated' || a.source === 'stale' ? 'cache' : 'upstream' }, a.body.length);
      return void res.end(a.body);
    }
    case 'blob': {
      state.kind = 'blob';
      const range = req.headers.range;
      const a = await deps.registry.blob(scope, ep.digest, m, typeof range === 'string' ? range : undefined);
      state.cache = a.source;
      res.setHeader('content-type', 'application/octet-stream');
      res.setHeader('docker-content-digest', a.digest);
      res.setHeader('accept-ranges', 'bytes');
      res.setHeader('etag', `"${a.digest}"`);
      if (a.range) {
        res.statusCode = 206;
        res.setHeader('content-range', `bytes ${a.range.start}-${a.range.end}/${a.size ?? '*'}`);
        res.setHeader('content-length', a.range.end - a.range.start + 1);
      } else {
        res.statusCode = 200;
        if (a.size !== undefined) res.setHeader('content-length', a.size);
      }
      if (!a.body) return void res.end();
      return streamBody(deps, res, a.body, a.source === 'hit' ? 'cache' : 'upstream', state);
    }
    case 'tags': {
      state.kind = 'tags';
      const l = await deps.registry.tags(scope, ep.name, ep.n, ep.last);
      const headers: Record<string, string> = {};
      if (l.next) {
        const q = new URLSearchParams();
        if (l.next.n !== undefined) q.set('n', l.next.n);
        q.set('last', l.next.last);
        if (target.ns !== undefined) q.set('ns', target.ns);
        headers.link = `</v2/${ep.name}/tags/list?${q}>; rel="next"`;
      }
      return sendBuffer(req, res, 200, l.body, l.contentType, headers);
    }
    case 'referrers': {
      state.kind = 'referrers';
      const l = await deps.registry.referrers(scope, ep.digest, ep.artifactType);
      return sendBuffer(req, res, 200, l.body, l.contentType);
    }
  }
}

function streamBody(deps: HandlerDeps, res: Res, body: Readable | SelfWritingBody, source: 'cache' | 'upstream', state: RequestState): Promise<void> {
  const done = (err: Error | null | undefined): void => {
    deps.metrics.bytesServed.inc({ source }, state.bytes);
    if (err) {
      state.error = err.message;
      // Never end cleanly after a failed body: the client must see an aborted response.
      abort(res);
    }
  };
  // HTTP/1.1: the file writes itself with pooled buffers. HTTP/2 gets a plain stream.
  if (isSelfWriting(body) && res instanceof ServerResponse && body.canWritePooled()) {
    return body.writeTo(res).then(
      (n) => {
        state.bytes = n;
        res.end();
        done(null);
      },
      (err: Error) => done(err),
    );
  }
  const src = isSelfWriting(body) ? body.stream() : body;
  return new Promise((resolve) => {
    src.on('data', (c: Buffer) => {
      state.bytes += c.length;
    });
    pipeline(src, res as NodeJS.WritableStream, (err) => {
      done(err);
      resolve();
    });
  });
}
