/** GET /v2/<name>/tags/list with n/last paging; the next page's Link points back at regcache. */
import { nextLink } from '../paging.js';
import { sendJson } from '../respond.js';
import type { Route } from '../route.js';
import { repositoryOf } from './repository.js';

export const tags: Route = {
  endpoint: 'tags', kind: 'tags', authorize: true,
  methods: {
    GET: async (ctx) => {
      const ep = ctx.target.endpoint as { kind: 'tags'; name: string; n?: number; last?: string };
      const l = await repositoryOf(ctx, ep.name).listTags(ep.n, ep.last);
      if (l.next) ctx.res.setHeader('link', nextLink(`/v2/${ep.name}/tags/list`, l.next, ctx.target.ns !== undefined ? { ns: ctx.target.ns } : {}));
      sendJson(ctx.req, ctx.res, 200, { name: ep.name, tags: l.tags });
    },
  },
};
