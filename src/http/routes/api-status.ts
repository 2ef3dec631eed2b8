/** GET /api/v1/status (the overview) and GET /api/v1/openapi.json (the API's description). */
import { OPENAPI } from '../../status/openapi.js';
import { sendJson } from '../respond.js';
import type { Route } from '../route.js';
import { adminOf } from './api-guard.js';

export const apiStatus: Route = {
  endpoint: 'api-status', kind: 'admin', authorize: true,
  methods: {
    GET: async (ctx) => {
      ctx.res.setHeader('cache-control', 'no-store');
      sendJson(ctx.req, ctx.res, 200, await adminOf(ctx).status());
    },
  },
};

export const apiOpenapi: Route = {
  endpoint: 'api-openapi', kind: 'admin', authorize: true,
  methods: {
    GET: async (ctx) => {
      adminOf(ctx);
      sendJson(ctx.req, ctx.res, 200, OPENAPI);
    },
  },
};
