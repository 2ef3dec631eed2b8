/** /metrics: Prometheus text, on the listener that serves it. */
import { OciError } from '../../protocol/errors.js';
import { sendBuffer } from '../respond.js';
import type { Route } from '../route.js';

export const metrics: Route = {
  endpoint: 'metrics', kind: 'metrics', authorize: true,
  methods: {
    GET: async ({ req, res, deps, listener }) => {
      if (!listener.serveMetrics) throw new OciError('NOT_FOUND', 'metrics are served on metrics.listen');
      const text = await deps.metrics.registry.metrics();
      sendBuffer(req, res, 200, Buffer.from(text), deps.metrics.registry.contentType);
    },
  },
};
