/** GET /v2/<name>/referrers/<digest>[?artifactType=]: an OCI index, never 404. */
import { sendBuffer } from '../respond.js';
import type { Route } from '../route.js';
import { repositoryOf } from './repository.js';

export const referrers: Route = {
  endpoint: 'referrers', kind: 'referrers', authorize: true,
  methods: {
    GET: async (ctx) => {
      const ep = ctx.target.endpoint as { kind: 'referrers'; name: string; digest: string; artifactType?: string };
      const l = await repositoryOf(ctx, ep.name).referrers(ep.digest, ep.artifactType);
      sendBuffer(ctx.req, ctx.res, 200, l.body, l.contentType, l.headers ?? {});
    },
  },
};
