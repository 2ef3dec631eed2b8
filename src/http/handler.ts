/**
 * The request handler shared by every listener (plain HTTP/1.1, HTTPS with h2, per-host
 * ports): parse the target (pure grammar), find the route for (endpoint, method), check
 * access, run the route. One log line and one metrics sample per request, with the kind
 * named by the route. Every failure goes out through the one error path (respond.ts).
 */
import type { Endpoint } from '../protocol/paths.js';
import { OciError } from '../protocol/errors.js';
import { parseTarget } from '../protocol/paths.js';
import { sendError, toOciError, type Req, type Res } from './respond.js';
import type { HttpDeps, Method, RequestState, Route, RouteContext } from './route.js';
import { apiEvents, apiEventsStream } from './routes/api-events.js';
import { apiJob, apiJobCancel, apiJobRun, apiJobs } from './routes/api-jobs.js';
import { apiRepositories, apiRepository, apiTag, apiTagRefresh } from './routes/api-repositories.js';
import { apiOpenapi, apiStatus } from './routes/api-status.js';
import { apiSync } from './routes/api-sync.js';
import { base } from './routes/base.js';
import { blobs } from './routes/blobs.js';
import { catalog } from './routes/catalog.js';
import { healthz, readyz } from './routes/health.js';
import { AcceptCache, manifestRoute } from './routes/manifests.js';
import { metrics } from './routes/metrics.js';
import { referrers } from './routes/referrers.js';
import { tags } from './routes/tags.js';
import { ui } from './routes/ui.js';
import { uploads } from './routes/uploads.js';

export type { HttpDeps } from './route.js';

const API_VERSION = 'registry/2.0';
const METHODS = new Set<string>(['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE']);

/** The route table: one route per endpoint kind, each with its methods. */
export function routeTable(): Map<Endpoint['kind'], Route> {
  const routes = [
    healthz, readyz, metrics, base, catalog, manifestRoute(new AcceptCache()), blobs, uploads, tags, referrers,
    apiStatus, apiOpenapi, apiRepositories, apiRepository, apiTag, apiTagRefresh, apiJobs, apiJob, apiJobRun, apiJobCancel, apiEvents, apiEventsStream, ui, apiSync,
  ];
  // HEAD is GET without the body (respond.ts leaves it out) wherever a route has no HEAD of its own.
  return new Map(routes.map((r) => [r.endpoint, r.methods.GET && !r.methods.HEAD ? { ...r, methods: { ...r.methods, HEAD: r.methods.GET } } : r]));
}

export interface ListenerOptions {
  /** The upstream a per-host port serves. */
  fixedHost?: string | undefined;
  /** Whether /metrics is served on this listener. */
  serveMetrics: boolean;
}

export function createHandler(deps: HttpDeps, listener: ListenerOptions): (req: Req, res: Res) => void {
  const routes = routeTable();
  return (req, res) => {
    const started = performance.now();
    const state: RequestState = { upstream: listener.fixedHost ?? '-', kind: 'other', bytes: 0 };
    let logged = false;
    const done = (): void => {
      if (logged) return;
      logged = true;
      const seconds = (performance.now() - started) / 1000;
      // Bounded label values: any other method (HTTP/2 accepts any token) is 'other'.
      const method = req.method !== undefined && METHODS.has(req.method) ? req.method : 'other';
      const complete = res.writableFinished;
      const status = complete ? res.statusCode : 499;
      // JSON answers and errors are sent whole: their length is their Content-Length.
      if (state.bytes === 0 && complete && req.method !== 'HEAD') state.bytes = Number(res.getHeader('content-length') ?? 0) || 0;
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
    // Nothing regcache sends is to be sniffed into another type (an upstream's text/html, say).
    res.setHeader('x-content-type-options', 'nosniff');
    handle(deps, routes, listener, req, res, state).catch((err: unknown) => {
      const oci = toOciError(err);
      if (oci.code === 'INTERNAL') deps.log.error({ err, path: req.url }, 'internal error');
      state.error = oci.code;
      sendError(req, res, oci);
    });
  };
}

async function handle(deps: HttpDeps, routes: Map<Endpoint['kind'], Route>, listener: ListenerOptions, req: Req, res: Res, state: RequestState): Promise<void> {
  const target = parseTarget(req.url ?? '/');
  const route = routes.get(target.endpoint.kind);
  if (!route) throw new OciError('NOT_FOUND', 'unknown endpoint');
  state.kind = route.kind;
  const method = (req.method ?? 'GET') as Method;
  const handler = METHODS.has(method) ? route.methods[method] : undefined;
  if (!handler) {
    const allow = Object.keys(route.methods).join(', ');
    throw new OciError('UNSUPPORTED', `${String(req.method).slice(0, 16)} is not supported on this endpoint`, undefined, { headers: { allow } });
  }
  if (route.authorize) {
    const denied = await deps.authorize?.(req, { endpoint: target.endpoint, method, listener: { fixedHost: listener.fixedHost }, ns: target.ns });
    if (denied) throw denied;
  }
  const ctx: RouteContext = { req, res, target, method, state, deps, listener: { fixedHost: listener.fixedHost, serveMetrics: listener.serveMetrics } };
  await handler(ctx);
}
