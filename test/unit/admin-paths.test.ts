/** The admin paths as a table of cases, and the OpenAPI description against the route table. */
import { describe, expect, it } from 'vitest';
import { routeTable } from '../../src/http/handler.js';
import { ADMIN_KINDS } from '../../src/protocol/admin-paths.js';
import { OciError } from '../../src/protocol/errors.js';
import { parseTarget } from '../../src/protocol/paths.js';
import { OPENAPI } from '../../src/status/openapi.js';

const parsed = (t: string): unknown => parseTarget(t).endpoint;
const codeOf = (t: string): string => {
  try {
    parseTarget(t);
    return 'ok';
  } catch (err) {
    return err instanceof OciError ? `${err.status} ${err.code}` : 'thrown';
  }
};

describe('admin paths', () => {
  it.each([
    ['/api/v1/status', { kind: 'api-status' }],
    ['/api/v1/openapi.json', { kind: 'api-openapi' }],
    ['/api/v1/repositories?q=alp&n=10&last=docker.io/a', { kind: 'api-repositories', q: 'alp', n: 10, last: 'docker.io/a' }],
    ['/api/v1/repositories/docker.io/library/alpine', { kind: 'api-repository', upstream: 'docker.io', repo: 'library/alpine' }],
    ['/api/v1/repositories/localhost:5001/tags/x', { kind: 'api-repository', upstream: 'localhost:5001', repo: 'tags/x' }],
    ['/api/v1/repositories/docker.io/library/alpine/-/tags/3.20', { kind: 'api-tag', upstream: 'docker.io', repo: 'library/alpine', tag: '3.20' }],
    ['/api/v1/repositories/hosted/a/b/-/tags/v1/refresh', { kind: 'api-tag-refresh', upstream: 'hosted', repo: 'a/b', tag: 'v1' }],
    ['/api/v1/jobs', { kind: 'api-jobs' }],
    ['/api/v1/jobs/nightly-sync', { kind: 'api-job', job: 'nightly-sync' }],
    ['/api/v1/jobs/nightly-sync/run', { kind: 'api-job-run', job: 'nightly-sync' }],
    ['/api/v1/jobs/nightly-sync/cancel', { kind: 'api-job-cancel', job: 'nightly-sync' }],
    ['/api/v1/events?after=5&type=upstream,sync.failed&n=3', { kind: 'api-events', after: '5', types: ['upstream', 'sync.failed'], n: 3 }],
    ['/api/v1/events/stream?status=1', { kind: 'api-events-stream', status: true }],
    ['/api/v1/events/stream?status=1&after=12', { kind: 'api-events-stream', status: true, after: '12' }],
    ['/ui', { kind: 'ui', file: 'index.html' }],
    ['/ui/', { kind: 'ui', file: 'index.html' }],
    ['/ui/app.js', { kind: 'ui', file: 'app.js' }],
  ])('%s', (target, endpoint) => {
    expect(parsed(target)).toEqual(endpoint);
  });

  it.each([
    ['/api/v2/status', '404 NOT_FOUND'],
    ['/api/v1/nothing', '404 NOT_FOUND'],
    ['/ui/../etc/passwd', '404 NOT_FOUND'],
    ['/ui/secret.txt', '404 NOT_FOUND'],
    ['/api/v1/repositories/docker.io/Upper/-/tags/v1', '400 NAME_INVALID'],
    ['/api/v1/repositories/docker.io', '400 NAME_INVALID'],
    ['/api/v1/repositories/docker.io/a/-/tags/-bad', '400 TAG_INVALID'],
    ['/api/v1/repositories/docker.io/a/-/other', '404 NOT_FOUND'],
    ['/api/v1/repositories/docker.io/a%2f..', '400 NAME_INVALID'],
    ['/api/v1/jobs/..%2f', '400 NAME_INVALID'],
    ['/api/v1/jobs/.hidden', '400 NAME_INVALID'],
    ['/api/v1/repositories?n=0', '400 PAGINATION_NUMBER_INVALID'],
    ['/api/v1/repositories?n=1001', '400 PAGINATION_NUMBER_INVALID'],
    ['/api/v1/repositories?q=a&q=b', '400 REQUEST_INVALID'],
    ['/api/v1/events?after=x', '400 REQUEST_INVALID'],
    ['/api/v1/events/stream?after=-1', '400 REQUEST_INVALID'],
    ['/api/v1/events?type=a;b', '400 REQUEST_INVALID'],
  ])('%s is %s', (target, code) => {
    expect(codeOf(target)).toBe(code);
  });

  it('every admin kind has a route, and every route path of the OpenAPI file parses to one', () => {
    const table = routeTable();
    for (const k of ADMIN_KINDS) expect(table.has(k as never), k).toBe(true);
    const routed = [...ADMIN_KINDS].filter((k) => k !== 'ui');
    const sample: Record<string, string> = { '{upstream}': 'docker.io', '{repo}': 'library/alpine', '{tag}': 'v1', '{job}': 'nightly' };
    const described = new Set<string>();
    for (const [path, ops] of Object.entries(OPENAPI.paths)) {
      const concrete = `/api/v1${path.replace(/\{\w+\}/g, (p) => sample[p]!)}`;
      const kind = (parseTarget(concrete).endpoint as { kind: string }).kind;
      described.add(kind);
      const route = table.get(kind as never)!;
      for (const method of Object.keys(ops)) expect(route.methods[method.toUpperCase() as 'GET'], `${method} ${path}`).toBeDefined();
    }
    expect([...described].sort()).toEqual(routed.sort());
  });
});
