/**
 * Repositories in the admin API: the searchable, paged list; one repository with its tags;
 * a tag's refresh (POST .../-/tags/<tag>/refresh: one upstream HEAD now) and forget
 * (DELETE .../-/tags/<tag>: the tag goes, its content stays until retention).
 */
import { OciError } from '../../protocol/errors.js';
import { sendJson } from '../respond.js';
import type { Route } from '../route.js';
import { adminOf, type Ep, assertSameOrigin } from './api-guard.js';

export const apiRepositories: Route = {
  endpoint: 'api-repositories', kind: 'admin', authorize: true,
  methods: {
    GET: async (ctx) => {
      const ep = ctx.target.endpoint as Ep<'api-repositories'>;
      const page = await adminOf(ctx).repositories({ n: ep.n ?? 50, ...(ep.q !== undefined ? { q: ep.q } : {}), ...(ep.last !== undefined ? { last: ep.last } : {}) });
      sendJson(ctx.req, ctx.res, 200, page);
    },
  },
};

export const apiRepository: Route = {
  endpoint: 'api-repository', kind: 'admin', authorize: true,
  methods: {
    GET: async (ctx) => {
      const ep = ctx.target.endpoint as Ep<'api-repository'>;
      const n = Number(ctx.target.query.get('n') ?? 100);
      if (!Number.isInteger(n) || n < 1 || n > 1000) throw new OciError('PAGINATION_NUMBER_INVALID', 'n must be an integer from 1 to 1000');
      const last = ctx.target.query.get('last') ?? undefined;
      const d = await adminOf(ctx).repository({ upstream: ep.upstream, repo: ep.repo }, { n, ...(last !== undefined ? { last } : {}) });
      if (!d) throw new OciError('NAME_UNKNOWN', 'no such repository in the store', { repository: `${ep.upstream}/${ep.repo}` });
      sendJson(ctx.req, ctx.res, 200, d);
    },
  },
};

export const apiTag: Route = {
  endpoint: 'api-tag', kind: 'admin', authorize: true,
  methods: {
    DELETE: async (ctx) => {
      assertSameOrigin(ctx);
      const ep = ctx.target.endpoint as Ep<'api-tag'>;
      await adminOf(ctx).forgetTag({ upstream: ep.upstream, repo: ep.repo }, ep.tag);
      ctx.deps.log.info({ repository: `${ep.upstream}/${ep.repo}`, tag: ep.tag }, 'admin: cached tag forgotten');
      sendJson(ctx.req, ctx.res, 200, { forgotten: true });
    },
  },
};

export const apiTagRefresh: Route = {
  endpoint: 'api-tag-refresh', kind: 'admin', authorize: true,
  methods: {
    POST: async (ctx) => {
      assertSameOrigin(ctx);
      const ep = ctx.target.endpoint as Ep<'api-tag-refresh'>;
      const r = await adminOf(ctx).refreshTag({ upstream: ep.upstream, repo: ep.repo }, ep.tag);
      ctx.deps.log.info({ repository: `${ep.upstream}/${ep.repo}`, tag: ep.tag, digest: r.digest, changed: r.changed }, 'admin: tag refreshed');
      sendJson(ctx.req, ctx.res, 200, { digest: r.digest ?? null, changed: r.changed });
    },
  },
};
