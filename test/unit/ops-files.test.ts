/**
 * The operations files (issue 14): config/grafana/regcache.json and
 * config/prometheus/alerts.yaml. Every PromQL expression in them parses (Prometheus's own
 * grammar, @prometheus-io/lezer-promql) and names only metrics a regcache process exports,
 * read from a Metrics instance's registry, so a renamed metric breaks this test, not a
 * dashboard in production.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parser } from '@prometheus-io/lezer-promql';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { SyncMetrics } from '../../src/jobs/sync-metrics.js';
import { Metrics } from '../../src/metrics/metrics.js';

const ROOT = resolve(import.meta.dirname, '..', '..');

/** Series names a Metrics registry exports: histograms and summaries as their sample series. */
async function exportedNames(): Promise<Set<string>> {
  const names = new Set<string>();
  // The sync jobs' metrics live on the same registry (src/jobs/sync-metrics.ts).
  const metrics = new Metrics();
  new SyncMetrics(metrics.registry, { gauges: () => [] });
  for (const m of await metrics.registry.getMetricsAsJSON()) {
    if (m.type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m.name + s);
    else if (m.type === 'summary') for (const s of ['', '_sum', '_count']) names.add(m.name + s);
    else names.add(m.name);
  }
  return names;
}

/** Grafana's built-in interval variables, as a duration PromQL accepts. */
function grafanaToPromql(expr: string): string {
  return expr.replace(/\$__(rate_interval|interval|range)\b/g, '5m');
}

/** The metric names an expression selects; throws on a syntax error. */
function metricNames(expr: string): string[] {
  const tree = parser.parse(expr);
  const names: string[] = [];
  const errors: number[] = [];
  tree.iterate({
    enter(n) {
      if (n.type.isError) errors.push(n.from);
      if (n.name === 'Identifier' && n.node.parent?.name === 'VectorSelector') names.push(expr.slice(n.from, n.to));
    },
  });
  if (errors.length) throw new Error(`PromQL syntax error at ${errors[0]}: ${expr}`);
  return names;
}

interface Panel { title?: string; type: string; targets?: Array<{ expr?: string }>; panels?: Panel[] }
const dashboard = JSON.parse(readFileSync(join(ROOT, 'config', 'grafana', 'regcache.json'), 'utf8')) as {
  title: string; uid: string; panels: Panel[]; templating: { list: Array<{ name: string; type: string; query?: { query: string } }> };
};
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const dashboardExprs = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}"`, expr: grafanaToPromql(t.expr ?? '') })));
// label_values(metric, label) in the variables is Grafana's; its metric selector is PromQL.
const variableExprs = dashboard.templating.list.filter((v) => v.type === 'query').map((v) => {
  const m = /^label_values\((.+),\s*\w+\)$/.exec(v.query!.query);
  if (!m) throw new Error(`variable ${v.name}: unexpected query ${v.query!.query}`);
  return { where: `variable ${v.name}`, expr: m[1]! };
});
const alerts = parseYaml(readFileSync(join(ROOT, 'config', 'prometheus', 'alerts.yaml'), 'utf8')) as {
  groups: Array<{ rules: Array<{ alert?: string; expr: string }> }>;
};
const alertExprs = alerts.groups.flatMap((g) => g.rules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr })));

describe('PromQL metric-name check', () => {
  it('finds the selected metrics, not functions, labels or keywords, and rejects bad syntax', () => {
    expect(metricNames('sum by (upstream) (rate(a_total{result="stale"}[5m])) / on(job) group_left(x) b:c offset 5m > bool 0 and absent(d)'))
      .toEqual(['a_total', 'b:c', 'd']);
    expect(() => metricNames('sum(rate(a_total[$upstream]))')).toThrow(/syntax error/);
  });
});

describe('config/grafana/regcache.json', () => {
  it('is a dashboard with panels for each thing the issue names', () => {
    expect(dashboard.uid).toBe('regcache');
    const titles = panels.map((p) => p.title);
    for (const t of ['Blob hit ratio', 'Bytes saved', 'Upstream health', 'Upstream latency p99', 'Stale answers', 'Store fill', 'Evictions', 'Sync job state', 'Pending tags']) {
      expect(titles).toContain(t);
    }
    for (const p of panels.filter((x) => x.type !== 'row')) expect(p.targets?.length, `panel "${p.title}"`).toBeGreaterThan(0);
  });

  it('every expression parses and names only metrics regcache exports', async () => {
    const known = await exportedNames();
    const used = new Set<string>();
    for (const { where, expr } of [...dashboardExprs, ...variableExprs]) {
      for (const name of metricNames(expr)) {
        expect(known.has(name), `${where}: ${name} is not exported by regcache`).toBe(true);
        used.add(name);
      }
    }
    for (const name of ['regcache_cache_results_total', 'regcache_upstream_up', 'regcache_store_max_bytes', 'regcache_sync_runs_total', 'regcache_sync_pending_tags']) {
      expect(used).toContain(name);
    }
  });
});

describe('config/prometheus/alerts.yaml', () => {
  it('has the alerts the issue asks for', () => {
    expect(alertExprs.map((a) => a.where)).toEqual([
      'alert RegcacheUpstreamDown', 'alert RegcacheServingStale', 'alert RegcacheSyncFailing',
      'alert RegcacheSyncStuck', 'alert RegcacheStoreNearMaxSize', 'alert RegcacheDigestMismatch',
    ]);
  });

  it('every expression parses and names only metrics regcache exports', async () => {
    const known = await exportedNames();
    for (const { where, expr } of alertExprs) {
      const names = metricNames(expr);
      expect(names.length, where).toBeGreaterThan(0);
      for (const name of names) expect(known.has(name), `${where}: ${name} is not exported by regcache`).toBe(true);
    }
  });
});
