/** Sync and copy jobs through JobControl: list, detail with history, run now, cancel. */
import type { JobControl } from '../../jobs/job-control.js';
import { OciError } from '../../protocol/errors.js';
import { sendJson } from '../respond.js';
import type { Route, RouteContext } from '../route.js';
import { adminOf, assertSameOrigin } from './api-guard.js';

function jobsOf(ctx: RouteContext): JobControl {
  const jobs = adminOf(ctx).jobs;
  if (!jobs) throw new OciError('NOT_FOUND', 'no jobs are configured on this server');
  return jobs;
}

function jobName(ctx: RouteContext): string {
  return (ctx.target.endpoint as { job: string }).job;
}

/** The job a state-changing request names, after the cross-site check; 404 when unknown. */
function actOn(ctx: RouteContext): { jobs: JobControl; name: string } {
  assertSameOrigin(ctx);
  const jobs = jobsOf(ctx);
  const name = jobName(ctx);
  if (!jobs.get(name)) throw new OciError('NOT_FOUND', 'no such job', { job: name });
  return { jobs, name };
}

export const apiJobs: Route = {
  endpoint: 'api-jobs', kind: 'admin', authorize: true,
  methods: {
    GET: async (ctx) => {
      const jobs = adminOf(ctx).jobs;
      sendJson(ctx.req, ctx.res, 200, { jobs: jobs ? jobs.list() : [] });
    },
  },
};

export const apiJob: Route = {
  endpoint: 'api-job', kind: 'admin', authorize: true,
  methods: {
    GET: async (ctx) => {
      const d = jobsOf(ctx).get(jobName(ctx));
      if (!d) throw new OciError('NOT_FOUND', 'no such job', { job: jobName(ctx) });
      sendJson(ctx.req, ctx.res, 200, d);
    },
  },
};

export const apiJobRun: Route = {
  endpoint: 'api-job-run', kind: 'admin', authorize: true,
  methods: {
    POST: async (ctx) => {
      const { jobs, name } = actOn(ctx);
      const wait = ctx.target.query.get('wait') === '1';
      const run = await jobs.runNow(name, { wait });
      ctx.deps.log.info({ job: name }, 'admin: job run now');
      sendJson(ctx.req, ctx.res, wait ? 200 : 202, { job: jobs.get(name), run: run ?? null });
    },
  },
};

export const apiJobCancel: Route = {
  endpoint: 'api-job-cancel', kind: 'admin', authorize: true,
  methods: {
    POST: async (ctx) => {
      const { jobs, name } = actOn(ctx);
      if (!jobs.cancel(name)) throw new OciError('CONFLICT', 'the job is not running', { job: name });
      ctx.deps.log.info({ job: name }, 'admin: job cancelled');
      sendJson(ctx.req, ctx.res, 200, { job: jobs.get(name) });
    },
  },
};
