/**
 * GET /v2/_catalog: repositories with content (cached and hosted), paged, listing only what
 * the caller may pull. On a per-host port only that upstream's repositories are listed, by
 * the names a client uses on that port.
 */
import { DEFAULT_PAGE, nextLink, page } from '../paging.js';
import { sendJson } from '../respond.js';
import type { Route } from '../route.js';

export const catalog: Route = {
  endpoint: 'catalog', kind: 'catalog', authorize: true,
  methods: {
    GET: async ({ req, res, target, deps, listener }) => {
      const mayPull = async (full: string): Promise<boolean> => (deps.canPull ? deps.canPull(req, {}, undefined, full).catch(() => false) : true);
      const ep = target.endpoint as { kind: 'catalog'; n?: number; last?: string };
      const n = ep.n ?? DEFAULT_PAGE;
      const host = listener.fixedHost;
      const prefix = host === undefined ? '' : `${host}/`;
      const full = await deps.catalog(ep.last === undefined ? '' : prefix + ep.last, n + 1, host);
      const p = page(full.map((r) => r.slice(prefix.length)), n);
      const allowed = await Promise.all(p.items.map((r) => mayPull(prefix + r)));
      p.items = p.items.filter((_, i) => allowed[i]);
      const headers: Record<string, string> = {};
      if (p.next) headers.link = nextLink('/v2/_catalog', p.next);
      for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
      sendJson(req, res, 200, { repositories: p.items });
    },
  },
};
