/**
 * The admin status view (`GET /api/v1/status`): version, uptime, store use against
 * `retention.maxSize`, hit ratios and bytes served by source (read from the metrics, so the
 * page and Prometheus never disagree), fills in flight with progress, and per upstream its
 * health, request counts and last Docker Hub `ratelimit-remaining`.
 */
import type { Counter } from 'prom-client';
import type { Metrics } from '../metrics/metrics.js';
import type { FillProgress } from '../registry/proxy/blob-cache.js';
import type { StoreTotals } from '../store/metadata-store.js';
import type { RegistryClient } from '../upstream/registry-client.js';

export interface UpstreamStatus {
  host: string;
  url: string;
  /** Down: marked by the failure detector and not answered successfully since. */
  state: 'up' | 'down';
  since: string;
  lastError?: { at: string; cause: string };
  requests: { total: number; failed: number };
  rateLimitRemaining?: { value: string; at: string };
}

export interface StatusView {
  version: string;
  startedAt: string;
  uptimeSeconds: number;
  store: { bytes: number; blobs: number; manifests: number; maxSize: number | null; fill: number | null };
  /** Share of answers from the cache (hit, revalidated, stale) per kind; null before any. */
  hitRatio: { blob: number | null; manifest: number | null };
  bytesServed: { cache: number; upstream: number };
  fills: FillProgress[];
  upstreams: UpstreamStatus[];
}

export interface StatusSources {
  version: string;
  startedAt: number;
  now: number;
  totals: StoreTotals;
  maxSize: number | undefined;
  metrics: Metrics;
  fills: FillProgress[];
  upstreams: RegistryClient[];
}

type Values = Array<{ labels: Record<string, string | number | undefined>; value: number }>;

async function values(c: Counter): Promise<Values> {
  return (await c.get()).values as Values;
}

const sum = (vs: Values, pred: (l: Record<string, string | number | undefined>) => boolean): number =>
  vs.reduce((a, v) => (pred(v.labels) ? a + v.value : a), 0);

const CACHED = new Set(['hit', 'revalidated', 'stale']);

function ratio(vs: Values, kind: string): number | null {
  const all = sum(vs, (l) => l.kind === kind);
  return all === 0 ? null : sum(vs, (l) => l.kind === kind && CACHED.has(String(l.result))) / all;
}

/** A failed upstream request: no answer, a 5xx or a 429 (what the failure detector counts). */
function failed(status: string): boolean {
  return status === 'error' || status === '429' || status.startsWith('5');
}

export async function statusView(s: StatusSources): Promise<StatusView> {
  const results = await values(s.metrics.cacheResults);
  const served = await values(s.metrics.bytesServed);
  const upstreamRequests = await values(s.metrics.upstreamRequests);
  const bytes = s.totals.blobBytes + s.totals.manifestBytes;
  const maxSize = s.maxSize && s.maxSize > 0 ? s.maxSize : null;
  const iso = (ms: number): string => new Date(ms).toISOString();
  return {
    version: s.version,
    startedAt: iso(s.startedAt),
    uptimeSeconds: Math.max(0, Math.round((s.now - s.startedAt) / 1000)),
    store: { bytes, blobs: s.totals.blobs, manifests: s.totals.manifests, maxSize, fill: maxSize ? bytes / maxSize : null },
    hitRatio: { blob: ratio(results, 'blob'), manifest: ratio(results, 'manifest') },
    bytesServed: { cache: sum(served, (l) => l.source === 'cache'), upstream: sum(served, (l) => l.source === 'upstream') },
    fills: s.fills,
    upstreams: s.upstreams.map((c) => {
      const h = c.health;
      const u: UpstreamStatus = {
        host: c.host,
        url: c.transport.baseUrl.origin + c.transport.baseUrl.pathname.replace(/\/$/, ''),
        state: h.marked ? 'down' : 'up',
        since: iso(h.since),
        requests: {
          total: sum(upstreamRequests, (l) => l.upstream === c.host),
          failed: sum(upstreamRequests, (l) => l.upstream === c.host && failed(String(l.status))),
        },
      };
      if (h.lastError) u.lastError = { at: iso(h.lastError.at), cause: h.lastError.cause };
      const rl = c.transport.rateLimit;
      if (rl) u.rateLimitRemaining = { value: rl.remaining, at: iso(rl.at) };
      return u;
    }),
  };
}
