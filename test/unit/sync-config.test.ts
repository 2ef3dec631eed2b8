import { describe, expect, it } from 'vitest';
import { ConfigError, validateConfig } from '../../src/config/validate.js';
import { parseSyncSource } from '../../src/protocol/sync-source.js';

const UPSTREAMS = { 'quay.io': { url: 'https://quay.io' }, 'docker.io': { url: 'https://registry-1.docker.io' } };

function error(doc: Record<string, unknown>): string {
  try {
    validateConfig({ upstreams: UPSTREAMS, ...doc });
    return '';
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
}

describe('sync config', () => {
  it('a job gets Quay-like defaults', () => {
    const cfg = validateConfig({ upstreams: UPSTREAMS, sync: { exporter: { source: 'quay.io/prometheus/node-exporter' } } });
    expect(cfg.sync).toEqual([{
      name: 'exporter', source: 'quay.io/prometheus/node-exporter', tags: '*', platforms: [], interval: 86_400_000,
      timeout: 3_600_000, enabled: true, retries: 3, retryDelay: 60_000, target: 'cache', rollback: false,
    }]);
  });

  it('takes comma lists as strings or lists, and a start time', () => {
    const j = validateConfig({ upstreams: UPSTREAMS, sync: { a: {
      source: 'quay.io/org/*', tags: ['v3.*', 'latest'], excludeTags: '*-rc*', platforms: 'linux/amd64, linux/arm64/v8', startAt: '2026-07-01T02:00:00Z', semver: '>=3',
    } } }).sync[0]!;
    expect(j).toMatchObject({ tags: 'v3.*,latest', excludeTags: '*-rc*', platforms: ['linux/amd64', 'linux/arm64/v8'], startAt: Date.parse('2026-07-01T02:00:00Z'), semver: '>=3' });
  });

  it('validation errors name the job and the key', () => {
    expect(error({ sync: { 'bad name!': { source: 'quay.io/a' } } })).toMatch(/^sync\.bad name!: invalid name/);
    expect(error({ sync: { a: {} } })).toBe('sync.a.source: required');
    expect(error({ sync: { a: { source: 'nginx' } } })).toMatch(/^sync\.a\.source: "nginx" must start with a configured upstream host/);
    expect(error({ sync: { a: { source: 'ghcr.io/org/app' } } })).toBe('sync.a.source: ghcr.io is not a configured upstream');
    expect(error({ sync: { a: { source: 'quay.io/org/*/x' } } })).toMatch(/^sync\.a\.source: a wildcard is allowed only as the last component/);
    expect(error({ sync: { a: { source: 'quay.io/a', tags: ' , ' } } })).toMatch(/^sync\.a\.tags: needs at least one pattern/);
    expect(error({ sync: { a: { source: 'quay.io/a', semver: '>>1' } } })).toMatch(/^sync\.a\.semver: invalid semver range/);
    expect(error({ sync: { a: { source: 'quay.io/a', platforms: 'linux' } } })).toMatch(/^sync\.a\.platforms: invalid platform "linux"/);
    expect(error({ sync: { a: { source: 'quay.io/a', startAt: 'tomorrow' } } })).toMatch(/^sync\.a\.startAt: must be an ISO 8601/);
    expect(error({ sync: { a: { source: 'quay.io/a', interval: '0' } } })).toBe('sync.a.interval: must be longer than 0');
  });

  it('a namespace on Docker Hub is refused: it has no catalog', () => {
    expect(error({ sync: { hub: { source: 'docker.io/library/*' } } })).toMatch(/^sync\.hub\.source: docker\.io cannot list its repositories/);
    expect(error({ sync: { hub: { source: 'docker.io/library/nginx' } } })).toBe('');
    expect(error({ sync: { q: { source: 'quay.io/org/*' } } })).toBe('');
  });

  it('a hosted target names one hosted repository, written by one job, with sparseIndex for a platform filter', () => {
    const hosted = { 'mirror/**': {}, 'multi/**': { sparseIndex: true } };
    expect(error({ sync: { a: { source: 'quay.io/a', target: 'cache' } } })).toBe('');
    expect(validateConfig({ upstreams: UPSTREAMS, hostedRepositories: hosted, sync: { a: { source: 'quay.io/a', target: 'hosted:mirror/a' } } }).sync[0]!.target).toBe('hosted:mirror/a');
    expect(error({ sync: { a: { source: 'quay.io/a', target: 'hosted' } } })).toBe('sync.a.target: must be `cache` or `hosted:<repository>`');
    expect(error({ sync: { a: { source: 'quay.io/a', target: 'hosted:Bad' } } })).toMatch(/^sync\.a\.target: "Bad" is not a valid repository name/);
    expect(error({ sync: { a: { source: 'quay.io/a', target: 'hosted:team/a' } } })).toBe('sync.a.target: team/a matches no hostedRepositories pattern: add one for it');
    expect(error({ hostedRepositories: hosted, sync: { a: { source: 'quay.io/org/*', target: 'hosted:mirror/a' } } })).toMatch(/^sync\.a\.target: a hosted target takes one source repository, not a namespace/);
    expect(error({ hostedRepositories: hosted, sync: { a: { source: 'quay.io/a', target: 'hosted:mirror/a', platforms: 'linux/amd64' } } }))
      .toBe('sync.a.target: a platform filter keeps indexes without every child: hostedRepositories.mirror/**.sparseIndex must be true');
    expect(error({ hostedRepositories: hosted, sync: { a: { source: 'quay.io/a', target: 'hosted:multi/a', platforms: 'linux/amd64' } } })).toBe('');
    expect(error({ hostedRepositories: hosted, sync: { a: { source: 'quay.io/a', target: 'hosted:mirror/a' }, b: { source: 'quay.io/b', target: 'hosted:mirror/a' } } }))
      .toBe('sync.b.target: mirror/a is already the target of sync job a');
  });

  it('limits and webhooks name configured upstreams and jobs', () => {
    expect(error({ syncLimits: { 'ghcr.io': { concurrency: 2 } } })).toBe('syncLimits.ghcr.io: ghcr.io is not a configured upstream');
    expect(validateConfig({ upstreams: UPSTREAMS, syncLimits: { 'quay.io': { perMinute: 60, rateLimitFloor: 10 } } }).syncLimits)
      .toEqual([{ host: 'quay.io', concurrency: 4, perMinute: 60, rateLimitFloor: 10 }]);
    expect(error({ webhooks: { w: { url: 'http://127.0.0.1:9/', jobs: ['nope'] } } })).toBe('webhooks.w.jobs: nope is not a sync or copy job');
    expect(error({ webhooks: { w: { url: 'http://u:p@127.0.0.1:9/' } } })).toMatch(/^webhooks\.w\.url: must not carry credentials/);
    expect(error({ webhooks: { w: { url: 'http://127.0.0.1:9/', events: ['sync.exploded'] } } })).toMatch(/^webhooks\.w\.events: unknown event/);
  });

  it('parses sources; a one-component Docker Hub name is an official image', () => {
    expect(parseSyncSource('docker.io/nginx')).toEqual({ host: 'docker.io', kind: 'repository', repo: 'library/nginx' });
    expect(parseSyncSource('quay.io/org/*')).toEqual({ host: 'quay.io', kind: 'namespace', prefix: 'org' });
    expect(parseSyncSource('127.0.0.1:5001/a/b')).toEqual({ host: '127.0.0.1:5001', kind: 'repository', repo: 'a/b' });
  });
});
