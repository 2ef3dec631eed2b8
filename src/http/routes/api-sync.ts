/**
 * The sync jobs under the admin API (docs/sync.md), JSON:
 *   GET  /api/v1/sync                  every job's summary
 *   GET  /api/v1/sync/<job>            one job: summary, config, history
 *   POST /api/v1/sync/<job>/now        start a run (202 with the run; ?wait=1: 200 once it ended)
 *   POST /api/v1/sync/<job>/cancel     cancel the running run (200 {cancelled: true|false})
 * Only on the main listener. With `auth` configured every call needs a user, also when
 * anonymous pulls are allowed (access.ts).
 */
import { OciError } from '../../protocol/errors.js';
import { sendJson } from '../respond.js';
import type { Route, RouteContext } from '../route.js';

type SyncEndpoint = { kind: 'api-sync'; job?: string; action?: 'now' | 'cancel' };

function jobsOf(ctx: RouteContext): { ep: SyncEndpoint; jobs: NonNullable<RouteContext['deps']['jobs']> } {
  if (ctx.listener.fixedHost !== undefined || !ctx.deps.jobs) throw new OciError('NOT_FOUND', 'the sync API is served on the main listener only');
  return { ep: ctx.target.endpoint as SyncEndpoint, jobs: ctx.deps.jobs };
}

function unknownJob(name: string): OciError {
  return new OciError('NOT_FOUND', `no sync or copy job ${JSON.stringify(name)} in the config`, { job: name });
}

export const apiSync: Route = {
  endpoint: 'api-sync', kind: 'api', authorize: true,
  methods: {
    GET: async (ctx) => {
      const { ep, jobs } = jobsOf(ctx);
      if (ep.action !== undefined) throw new OciError('UNSUPPORTED', `use POST for ${ep.action}`, undefined, { headers: { allow: 'POST' } });
      if (ep.job === undefined) return sendJson(ctx.req, ctx.res, 200, { jobs: jobs.list() });
      const d = jobs.get(ep.job);
      if (!d) throw unknownJob(ep.job);
      sendJson(ctx.req, ctx.res, 200, d);
    },
    POST: async (ctx) => {
      const { ep, jobs } = jobsOf(ctx);
      if (ep.job === undefined || ep.action === undefined) {
        throw new OciError('UNSUPPORTED', 'POST /api/v1/sync/<job>/now or /cancel', undefined, { headers: { allow: 'GET' } });
      }
      if (!jobs.get(ep.job)) throw unknownJob(ep.job);
      if (ep.action === 'cancel') return sendJson(ctx.req, ctx.res, 200, { job: ep.job, cancelled: jobs.cancel(ep.job) });
      const wait = ['1', 'true'].includes(ctx.target.query.get('wait') ?? '');
      const run = await jobs.runNow(ep.job, { wait });
      if (!run) throw new OciError('UNAVAILABLE', 'regcache is stopping; no new runs');
      sendJson(ctx.req, ctx.res, wait ? 200 : 202, { job: ep.job, run });
    },
  },
};
