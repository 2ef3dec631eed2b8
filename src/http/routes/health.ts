/** /healthz (the process runs) and /readyz (the stores answer). Never behind access control. */
import { sendJson } from '../respond.js';
import type { Route } from '../route.js';

export const healthz: Route = {
  endpoint: 'healthz', kind: 'health', authorize: false,
  methods: {
    GET: async ({ req, res }) => sendJson(req, res, 200, { status: 'ok' }),
  },
};

export const readyz: Route = {
  endpoint: 'readyz', kind: 'health', authorize: false,
  methods: {
    GET: async ({ req, res, deps }) => {
      const r = await deps.ready();
      sendJson(req, res, r.ok ? 200 : 503, { status: r.ok ? 'ready' : 'not ready', checks: r.checks });
    },
  },
};
