/** /v2/<name>/manifests/<reference>: GET and HEAD; PUT and DELETE as the repository allows. */
import type { Readable } from 'node:stream';
import { parseAccept } from '../../protocol/media-types.js';
import type { Route, RouteContext } from '../route.js';
import { repositoryOf } from './repository.js';

type ManifestEndpoint = { kind: 'manifest'; name: string; reference: string; isDigest: boolean };

/** Clients send the same few Accept headers over and over: parse each once (bounded). */
export class AcceptCache {
  private readonly parsed = new Map<string, string[]>();

  get(header: string | undefined): string[] {
    if (header === undefined) return [];
    let p = this.parsed.get(header);
    if (!p) {
      p = parseAccept(header);
      if (this.parsed.size >= 256) this.parsed.clear();
      this.parsed.set(header, p);
    }
    return p;
  }
}

export function manifestRoute(accepts: AcceptCache): Route {
  const get = async (ctx: RouteContext): Promise<void> => {
    const { req, res, state } = ctx;
    const ep = ctx.target.endpoint as ManifestEndpoint;
    const repo = repositoryOf(ctx, ep.name);
    const raw = req.headers.accept;
    const acceptHeader = Array.isArray(raw) ? raw.join(', ') : raw;
    const method = ctx.method === 'HEAD' ? 'HEAD' : 'GET';
    const a = await repo.getManifest(ep.reference, ep.isDigest, { method, accepted: accepts.get(acceptHeader), acceptHeader });
    state.cache = a.source;
    res.statusCode = 200;
    res.setHeader('content-type', a.mediaType);
    res.setHeader('content-length', a.size);
    res.setHeader('docker-content-digest', a.digest);
    res.setHeader('etag', `"${a.digest}"`);
    for (const [k, v] of Object.entries(a.headers ?? {})) res.setHeader(k, v);
    if (method === 'HEAD' || !a.body) return void res.end();
    state.bytes = a.body.length;
    const fromCache = a.source === 'hit' || a.source === 'revalidated' || a.source === 'stale';
    ctx.deps.metrics.bytesServed.inc({ source: fromCache ? 'cache' : 'upstream' }, a.body.length);
    res.end(a.body);
  };
  return {
    endpoint: 'manifest', kind: 'manifest', authorize: true,
    methods: {
      GET: get,
      HEAD: get,
      PUT: async (ctx) => {
        const ep = ctx.target.endpoint as ManifestEndpoint;
        const repo = repositoryOf(ctx, ep.name);
        const type = ctx.req.headers['content-type'];
        const a = await repo.putManifest(ep.reference, ctx.req as unknown as Readable, typeof type === 'string' ? type : undefined);
        ctx.res.statusCode = 201;
        ctx.res.setHeader('location', `/v2/${ep.name}/manifests/${a.digest}`);
        ctx.res.setHeader('docker-content-digest', a.digest);
        for (const [k, v] of Object.entries(a.headers ?? {})) ctx.res.setHeader(k, v);
        ctx.res.end();
      },
      DELETE: async (ctx) => {
        const ep = ctx.target.endpoint as ManifestEndpoint;
        await repositoryOf(ctx, ep.name).deleteManifest(ep.reference);
        ctx.res.statusCode = 202;
        ctx.res.end();
      },
    },
  };
}
