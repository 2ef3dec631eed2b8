/**
 * `sync.<name>` (sync jobs), `syncLimits.<host>` (what jobs may ask of an upstream) and
 * `webhooks.<name>` (where job events go). Every key applies live: the jobs service
 * (src/jobs/) reschedules on reload. docs/sync.md is the reference.
 */
import type { Config, JobSchedule, SyncJobConfig, SyncLimitsConfig, WebhookConfig } from '../types.js';
import { fail } from '../errors.js';
import { registryHostProblem } from '../endpoint-rules.js';
import { GlobSet } from '../../protocol/glob.js';
import { isValidName } from '../../protocol/grammar.js';
import { hostedTargetOf, parseSyncSource } from '../../protocol/sync-source.js';
import { tagFilterProblem } from '../../protocol/tag-pattern.js';
import { key, section, type Keys } from './define.js';
import { bool, duration, int, orOff, str, stringList } from './values.js';

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/;

export function nameProblem(name: string): string | undefined {
  return NAME_RE.test(name) ? undefined : `invalid name ${JSON.stringify(name)}: use letters, digits, '.', '_' and '-' (at most 63)`;
}

/** A comma list written as one string or as a YAML list. */
function commaList(v: unknown, k: string): string {
  if (Array.isArray(v) && v.length > 0 && v.every((t) => typeof t === 'string' && t !== '')) return v.join(',');
  return str(v, k);
}

const PLATFORM_RE = /^[a-z0-9]+\/[a-z0-9_]+(?:\/[a-z0-9]+)?$/;

export function platforms(v: unknown, k: string): string[] {
  if (Array.isArray(v) && v.length === 0) return [];
  const list = commaList(v, k).split(',').map((p) => p.trim()).filter(Boolean);
  for (const p of list) if (!PLATFORM_RE.test(p)) fail(k, `invalid platform ${JSON.stringify(p)} (use os/arch or os/arch/variant: linux/amd64, linux/arm64/v8)`);
  return list;
}

function startAt(v: unknown, k: string): number {
  const t = v instanceof Date ? v.getTime() : typeof v === 'string' && /^\d{4}-\d\d-\d\dT/.test(v) ? Date.parse(v) : NaN;
  if (Number.isNaN(t)) fail(k, `must be an ISO 8601 date and time (2026-07-01T02:00:00Z), not ${JSON.stringify(v)}`);
  return t;
}

function target(v: unknown, k: string): SyncJobConfig['target'] {
  if (v === 'cache') return 'cache';
  if (typeof v === 'string' && v.startsWith('hosted:')) {
    const repo = v.slice('hosted:'.length);
    if (!isValidName(repo)) fail(k, `${JSON.stringify(repo)} is not a valid repository name (hosted:<repository>, e.g. hosted:mirror/node-exporter)`);
    return `hosted:${repo}`;
  }
  fail(k, 'must be `cache` or `hosted:<repository>`');
}

function positiveDuration(v: unknown, k: string): number {
  const d = duration(v, k);
  if (d <= 0) fail(k, 'must be longer than 0');
  return d;
}

/** The schedule keys of sync jobs and scheduled copies (`copy.<name>`, copy.ts). */
export const scheduleKeys: Keys<JobSchedule> = {
  interval: key(positiveDuration, { default: '24h', apply: 'live', doc: 'time between the starts of two scheduled runs' }),
  startAt: key(startAt, { apply: 'live', doc: 'first scheduled run not before this time (ISO 8601); later runs every `interval` from it' }),
  timeout: key(positiveDuration, { default: '1h', apply: 'live', doc: 'a run still going after this long is stopped as FAIL' }),
  enabled: key(bool, { default: true, apply: 'live', doc: 'scheduled runs happen; a disabled job still runs on `sync now`' }),
  retries: key(int(0), { default: 3, apply: 'live', doc: 'failed runs retried this many times before waiting for the next interval' }),
  retryDelay: key(positiveDuration, { default: '1m', apply: 'live', doc: 'delay before the first retry; doubles for each further one' }),
};

export const sync = section<Omit<SyncJobConfig, 'name'>>('sync', 'map', {
  source: key(str, { required: true, apply: 'live', doc: 'what to sync: an upstream repository (`quay.io/prometheus/node-exporter`) or every repository under a namespace (`quay.io/myorg/*`, from the upstream\'s catalog; not Docker Hub, which has none). The host must be a configured upstream' }),
  tags: key(commaList, { default: '*', apply: 'live', doc: 'comma list of Quay tag patterns: `*`, `?`, `[seq]`, `[!seq]` (`v3.[12]*, latest`)' }),
  excludeTags: key(commaList, { apply: 'live', doc: 'comma list of patterns of tags to leave out' }),
  semver: key(str, { apply: 'live', doc: 'only tags that are versions in this semver range (`>=1.2 <2`)' }),
  platforms: key(platforms, { default: [], defaultDoc: 'all', apply: 'live', doc: 'for multi-platform images only these platforms\' manifests and blobs are fetched (`linux/amd64, linux/arm64`); the index is kept unchanged' }),
  ...scheduleKeys,
  target: key(target, { default: 'cache', apply: 'live', doc: '`cache`: pre-warm the cache, and keep what the job holds from retention; `hosted:<repository>`: mirror into that hosted repository (exactly the matching tags; pushes to it refused)' }),
  rollback: key(bool, { default: false, apply: 'live', doc: 'tags switch to their new digests (and, with a hosted target, tags that stopped matching are removed) only when the whole run succeeds; else each tag as it syncs' }),
}, {
  entry: { field: 'name', doc: '<name>', nameProblem },
  check: (j, prefix) => {
    const src = parseSyncSource(j.source);
    if ('problem' in src) fail(`${prefix}.source`, src.problem);
    const problem = tagFilterProblem({ include: j.tags, exclude: j.excludeTags });
    if (problem) fail(`${prefix}.tags`, problem);
    const range = tagFilterProblem({ include: '*', semver: j.semver });
    if (range) fail(`${prefix}.semver`, range);
  },
});

export const syncLimits = section<Omit<SyncLimitsConfig, 'host'>>('syncLimits', 'map', {
  concurrency: key(int(1), { default: 4, apply: 'live', doc: 'sync requests in flight at once to this upstream (all jobs together)' }),
  perMinute: key(orOff(int(0)), { apply: 'live', doc: 'sync requests per minute to this upstream (all jobs together); `0`: no limit' }),
  rateLimitFloor: key(orOff(int(0)), { apply: 'live', doc: 'a run stops as FAIL when the upstream\'s `ratelimit-remaining` falls below this; `0`: off' }),
}, { entry: { field: 'host', doc: '<host>', nameProblem: registryHostProblem } });

const EVENT_TYPES = ['sync.started', 'sync.succeeded', 'sync.failed', 'sync.cancelled', 'copy.started', 'copy.succeeded', 'copy.failed', 'copy.cancelled'];

function events(v: unknown, k: string): string[] {
  const list = stringList('event types')(v, k);
  for (const e of list) if (!EVENT_TYPES.includes(e)) fail(k, `unknown event ${JSON.stringify(e)} (one of ${EVENT_TYPES.join(', ')})`);
  return list;
}

function webhookUrl(v: unknown, k: string): string {
  let u: URL;
  try {
    u = new URL(str(v, k));
  } catch {
    fail(k, `not a URL: ${JSON.stringify(v)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') fail(k, 'must be http:// or https://');
  if (u.username || u.password) fail(k, 'must not carry credentials; use `secret` to sign the body');
  return u.toString();
}

export const webhooks = section<Omit<WebhookConfig, 'name'>>('webhooks', 'map', {
  url: key(webhookUrl, { required: true, apply: 'live', doc: 'where events are POSTed (CloudEvents 1.0 JSON); the only non-upstream host regcache calls' }),
  events: key(events, { default: EVENT_TYPES, apply: 'live', doc: 'which events are sent' }),
  jobs: key(stringList('job names'), { defaultDoc: 'all', apply: 'live', doc: 'only events of these jobs' }),
  secret: key(str, { apply: 'live', doc: 'signs each body: `X-Regcache-Signature: sha256=<hex HMAC-SHA256>` (use `${VAR}`); never logged' }),
  timeout: key(positiveDuration, { default: '5s', apply: 'live', doc: 'one delivery attempt gives up after this long' }),
  retries: key(int(0), { default: 3, apply: 'live', doc: 'failed deliveries are retried this many times' }),
  retryDelay: key(positiveDuration, { default: '1s', apply: 'live', doc: 'delay before the first retry; doubles for each further one' }),
}, { entry: { field: 'name', doc: '<name>', nameProblem } });

/** Rules against other sections: sources and limits name configured upstreams; a namespace needs a catalog. */
export function checkSync(cfg: Config): void {
  const hosts = new Map(cfg.upstreams.map((u) => [u.host, u]));
  for (const j of cfg.sync) {
    const src = parseSyncSource(j.source);
    if ('problem' in src) continue;
    const up = hosts.get(src.host);
    if (!up) fail(`sync.${j.name}.source`, `${src.host} is not a configured upstream`);
    if (src.kind === 'namespace' && (up.host === 'docker.io' || /^https?:\/\/(registry-1|index)\.docker\.io(\/|$)/.test(up.url))) {
      fail(`sync.${j.name}.source`, `${src.host} cannot list its repositories (Docker Hub has no catalog): name each repository as its own job`);
    }
  }
  // A hosted target: one repository source into one hosted repository that no other job
  // writes, whose pattern allows the sparse index a platform filter leaves.
  const patterns = new GlobSet(cfg.hostedRepositories.map((p) => [p.pattern, p] as const));
  const owners = new Map<string, string>();
  for (const j of cfg.sync) {
    const repo = hostedTargetOf(j);
    if (repo === undefined) continue;
    const k = `sync.${j.name}.target`;
    const src = parseSyncSource(j.source);
    if (!('problem' in src) && src.kind === 'namespace') fail(k, 'a hosted target takes one source repository, not a namespace: name each repository as its own job');
    const p = patterns.first(repo);
    if (!p) fail(k, `${repo} matches no hostedRepositories pattern: add one for it`);
    if (j.platforms.length > 0 && !p.value.sparseIndex) {
      fail(k, `a platform filter keeps indexes without every child: hostedRepositories.${p.pattern}.sparseIndex must be true`);
    }
    const other = owners.get(repo);
    if (other !== undefined) fail(k, `${repo} is already the target of sync job ${other}`);
    owners.set(repo, j.name);
  }
  for (const l of cfg.syncLimits) if (!hosts.has(l.host)) fail(`syncLimits.${l.host}`, `${l.host} is not a configured upstream`);
  // Sync jobs and scheduled copies share one list of jobs (JobControl): one name each.
  const names = new Set(cfg.sync.map((j) => j.name));
  for (const c of cfg.copy) if (names.has(c.name)) fail(`copy.${c.name}`, `${c.name} is also a sync job; jobs need distinct names`);
  for (const c of cfg.copy) names.add(c.name);
  for (const w of cfg.webhooks) {
    for (const n of w.jobs ?? []) if (!names.has(n)) fail(`webhooks.${w.name}.jobs`, `${n} is not a sync or copy job`);
  }
}
