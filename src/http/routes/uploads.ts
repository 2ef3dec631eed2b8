/**
 * /v2/<name>/blobs/uploads/[<session>]: the push side, as the repository allows. The route
 * reads the spec's query parameters (digest, mount, from) and headers (Content-Range) and
 * writes Location with the repository name as the client addressed it (and its `ns`).
 */
import type { Readable } from 'node:stream';
import type { MountSource, UploadOp } from '../../registry/repository.js';
import type { Route, RouteContext } from '../route.js';
import { repositoryOf } from './repository.js';
import { requestHeader } from '../respond.js';

type UploadEndpoint = { kind: 'upload'; name: string; session?: string };

/** The request body (an empty one reads as no bytes). */
function bodyOf(ctx: RouteContext): Readable {
  return ctx.req as unknown as Readable;
}

/** The mount source, if the client may pull it (else the spec's answer: a new upload session). */
async function mountOf(ctx: RouteContext, digest: string, from: string | undefined): Promise<MountSource> {
  if (from === undefined) return { digest, from: undefined };
  try {
    if (ctx.deps.canPull && !(await ctx.deps.canPull(ctx.req, ctx.listener, ctx.target.ns, from))) return { digest, from: undefined };
    return { digest, from: ctx.deps.namespace.resolve(ctx.listener, ctx.target.ns, from).name };
  } catch {
    return { digest, from: undefined };
  }
}

async function opOf(ctx: RouteContext, op: UploadOp['op'], ep: UploadEndpoint): Promise<UploadOp> {
  const q = ctx.target.query;
  const session = ep.session ?? '';
  switch (op) {
    case 'start': {
      const mount = q.get('mount') ?? undefined;
      return {
        op, digest: q.get('digest') ?? undefined, body: bodyOf(ctx),
        mount: mount === undefined ? undefined : await mountOf(ctx, mount, q.get('from') ?? undefined),
      };
    }
    case 'append':
      return { op, session, body: ctx.req as unknown as Readable, contentRange: requestHeader(ctx.req, 'content-range') };
    case 'finish':
      return { op, session, digest: q.get('digest') ?? undefined, body: bodyOf(ctx) };
    default:
      return { op, session };
  }
}

const upload = (op: UploadOp['op']) => async (ctx: RouteContext): Promise<void> => {
  const ep = ctx.target.endpoint as UploadEndpoint;
  const repo = repositoryOf(ctx, ep.name);
  const a = await repo.upload(await opOf(ctx, op, ep));
  ctx.res.statusCode = a.status;
  for (const [k, v] of Object.entries(a.headers)) ctx.res.setHeader(k, v);
  if (a.location) {
    const ns = ctx.target.ns !== undefined ? `?ns=${encodeURIComponent(ctx.target.ns)}` : '';
    const path = 'session' in a.location ? `blobs/uploads/${a.location.session}` : `blobs/${a.location.blob}`;
    ctx.res.setHeader('location', `/v2/${ep.name}/${path}${ns}`);
  }
  ctx.res.end();
};

export const uploads: Route = {
  endpoint: 'upload', kind: 'upload', authorize: true,
  methods: { POST: upload('start'), PATCH: upload('append'), PUT: upload('finish'), GET: upload('status'), DELETE: upload('cancel') },
};
