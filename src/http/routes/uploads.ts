/** /v2/<name>/blobs/uploads/[<session>]: the push side, as the repository allows. */
import type { UploadOp } from '../../registry/repository.js';
import type { Route, RouteContext } from '../route.js';
import { repositoryOf } from './repository.js';

const upload = (op: UploadOp['op']) => async (ctx: RouteContext): Promise<void> => {
  const ep = ctx.target.endpoint as { kind: 'upload'; name: string; session?: string };
  const repo = repositoryOf(ctx, ep.name);
  const a = await repo.upload(op === 'start' ? { op } : { op, session: ep.session ?? '' } as UploadOp);
  ctx.res.statusCode = a.status;
  for (const [k, v] of Object.entries(a.headers)) ctx.res.setHeader(k, v);
  ctx.res.end();
};

export const uploads: Route = {
  endpoint: 'upload', kind: 'upload', authorize: true,
  methods: { POST: upload('start'), PATCH: upload('append'), PUT: upload('finish'), GET: upload('status'), DELETE: upload('cancel') },
};
