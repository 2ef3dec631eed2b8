/** GET /v2/: the API version check. */
import { sendJson } from '../respond.js';
import type { Route } from '../route.js';

export const base: Route = {
  endpoint: 'base', kind: 'base', authorize: true,
  methods: {
    GET: async ({ req, res }) => sendJson(req, res, 200, {}),
  },
};
