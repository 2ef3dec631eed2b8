/** The whole config schema: every section, in the order docs/config.md lists them. */
import type { Section } from './define.js';
import { auth, catalog } from './auth.js';
import { hosted, hostedRepositories } from './hosted.js';
import { cache } from './cache.js';
import { copy } from './copy.js';
import { metrics } from './metrics.js';
import { replicas } from './replicas.js';
import { retention } from './retention.js';
import { root } from './root.js';
import { server } from './server.js';
import { sync, syncLimits, webhooks } from './sync.js';
import { storage } from './storage.js';
import { tls } from './tls.js';
import { upstream } from './upstream.js';
import { upstreamHealth, upstreamTimeouts } from './upstream-client.js';

export { auth, cache, catalog, copy, hosted, hostedRepositories, metrics, replicas, retention, root, server, storage, sync, syncLimits, tls, upstream, upstreamHealth, upstreamTimeouts, webhooks };

// `any`: each section is typed against its own part of Config; here they are only walked.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnySection = Section<any>;

export const SECTIONS: readonly AnySection[] = [
  root, tls, cache, upstream, retention, metrics, hosted, hostedRepositories, auth, catalog, upstreamTimeouts, upstreamHealth, server, storage, replicas, sync, copy, syncLimits, webhooks,
];
