/**
 * The admin API (`/api/v1/...`) and page (`/ui/...`) paths, parsed into endpoint kinds like
 * the registry paths (paths.ts). Pure. Repository names contain `/`, so what follows a
 * repository is introduced by `/-/` (a `-` component is not a valid name component, so
 * `/api/v1/repositories/docker.io/library/alpine/-/tags/3.20` cannot be read two ways).
 */
import { OciError } from './errors.js';
import { isValidName, isValidTag } from './grammar.js';

export type AdminEndpoint =
  | { kind: 'api-status' }
  | { kind: 'api-openapi' }
  | { kind: 'api-repositories'; q?: string; n?: number; last?: string }
  | { kind: 'api-repository'; upstream: string; repo: string }
  | { kind: 'api-tag'; upstream: string; repo: string; tag: string }
  | { kind: 'api-tag-refresh'; upstream: string; repo: string; tag: string }
  | { kind: 'api-jobs' }
  | { kind: 'api-job'; job: string }
  | { kind: 'api-job-run'; job: string }
  | { kind: 'api-job-cancel'; job: string }
  | { kind: 'api-events'; after?: string; types?: string[]; n?: number }
  | { kind: 'api-events-stream'; status: boolean; after?: string }
  | { kind: 'ui'; file: string };

/** Every admin endpoint kind: the page and the API need the admin permission when auth is on. */
export const ADMIN_KINDS: ReadonlySet<string> = new Set<AdminEndpoint['kind']>([
  'api-status', 'api-openapi', 'api-repositories', 'api-repository', 'api-tag', 'api-tag-refresh',
  'api-jobs', 'api-job', 'api-job-run', 'api-job-cancel', 'api-events', 'api-events-stream', 'ui',
]);

/** Kinds `auth.publicStatus` opens without a login: what the overview shows, nothing else. */
export const PUBLIC_STATUS_KINDS: ReadonlySet<string> = new Set<AdminEndpoint['kind']>(['api-status', 'api-openapi', 'ui']);

export function isAdminEndpoint(ep: { kind: string }): boolean {
  return ADMIN_KINDS.has(ep.kind) || ep.kind === 'api-sync';
}

const UI_FILES = new Set(['index.html', 'app.js', 'app.css']);
/** Job names as the sync and copy config declares them. */
const JOB_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** A configured upstream host (`docker.io`, `localhost:5001`) or `hosted`. */
const UPSTREAM = /^[A-Za-z0-9.-]{1,253}(?::\d{1,5})?$/;

/** The `after` query parameter: an event id. */
function eventIdOf(query: URLSearchParams): string | undefined {
  const after = one(query, 'after');
  if (after !== undefined && !/^\d{1,15}$/.test(after)) throw new OciError('REQUEST_INVALID', 'after must be an event id');
  return after;
}

function one(query: URLSearchParams, key: string): string | undefined {
  const all = query.getAll(key);
  if (all.length > 1) throw new OciError('REQUEST_INVALID', `query parameter ${key} given more than once`);
  return all[0];
}

function count(query: URLSearchParams, key: string, max: number): number | undefined {
  const v = one(query, key);
  if (v === undefined) return undefined;
  if (!/^\d{1,6}$/.test(v) || Number(v) < 1 || Number(v) > max) {
    throw new OciError('PAGINATION_NUMBER_INVALID', `${key} must be an integer from 1 to ${max}`);
  }
  return Number(v);
}

function repository(raw: string): { upstream: string; repo: string } {
  const slash = raw.indexOf('/');
  const upstream = slash === -1 ? raw : raw.slice(0, slash);
  const repo = slash === -1 ? '' : raw.slice(slash + 1);
  if (!UPSTREAM.test(upstream)) throw new OciError('NAME_INVALID', 'invalid upstream in repository path', { upstream: upstream.slice(0, 300) });
  if (!isValidName(repo)) throw new OciError('NAME_INVALID', 'invalid repository name', { name: repo.slice(0, 300) });
  return { upstream, repo };
}

function tagOf(raw: string): string {
  if (!isValidTag(raw)) throw new OciError('TAG_INVALID', 'invalid tag', { tag: raw.slice(0, 200) });
  return raw;
}

function jobOf(raw: string): string {
  if (!JOB_NAME.test(raw)) throw new OciError('NAME_INVALID', 'invalid job name', { job: raw.slice(0, 200) });
  return raw;
}

/** Parses an admin path, or returns undefined when `path` is not under /api/ or /ui. */
export function parseAdminPath(path: string, query: URLSearchParams): AdminEndpoint | undefined {
  if (path === '/ui' || path === '/ui/') return { kind: 'ui', file: 'index.html' };
  if (path.startsWith('/ui/')) {
    const file = path.slice(4);
    if (!UI_FILES.has(file)) throw new OciError('NOT_FOUND', 'no such page asset');
    return { kind: 'ui', file };
  }
  if (path !== '/api' && !path.startsWith('/api/')) return undefined;
  if (!path.startsWith('/api/v1/')) throw new OciError('NOT_FOUND', 'unknown admin API version (this is /api/v1/)');
  if (path.includes('%')) throw new OciError('NAME_INVALID', 'percent-encoding is not allowed in admin API paths');
  const rest = path.slice('/api/v1/'.length);
  switch (rest) {
    case 'status': return { kind: 'api-status' };
    case 'openapi.json': return { kind: 'api-openapi' };
    case 'jobs': return { kind: 'api-jobs' };
    case 'events': {
      const e: AdminEndpoint = { kind: 'api-events' };
      const after = eventIdOf(query);
      if (after !== undefined) e.after = after;
      const type = one(query, 'type');
      if (type !== undefined) {
        const types = type.split(',');
        if (!types.every((t) => /^[a-z]+(\.[a-z]+)?$/.test(t))) throw new OciError('REQUEST_INVALID', 'type is a comma-separated list of event types');
        e.types = types;
      }
      const n = count(query, 'n', 1000);
      if (n !== undefined) e.n = n;
      return e;
    }
    case 'events/stream': {
      // `after`: replay what came after the events a page already fetched (the first connection
      // cannot send Last-Event-ID), so none emitted in between is lost.
      const after = eventIdOf(query);
      return { kind: 'api-events-stream', status: one(query, 'status') === '1', ...(after === undefined ? {} : { after }) };
    }
    case 'repositories': {
      const e: AdminEndpoint = { kind: 'api-repositories' };
      const q = one(query, 'q');
      if (q !== undefined) {
        if (q.length > 256) throw new OciError('REQUEST_INVALID', 'q is at most 256 characters');
        e.q = q;
      }
      const n = count(query, 'n', 1000);
      if (n !== undefined) e.n = n;
      const last = one(query, 'last');
      if (last !== undefined) e.last = last.slice(0, 600);
      return e;
    }
    default: break;
  }
  let m = /^jobs\/([^/]+)(?:\/(run|cancel))?$/.exec(rest);
  if (m) {
    const job = jobOf(m[1]!);
    if (m[2] === 'run') return { kind: 'api-job-run', job };
    if (m[2] === 'cancel') return { kind: 'api-job-cancel', job };
    return { kind: 'api-job', job };
  }
  m = /^repositories\/(.+?)\/-\/tags\/([^/]+)(\/refresh)?$/.exec(rest);
  if (m) {
    const r = repository(m[1]!);
    return { kind: m[3] ? 'api-tag-refresh' : 'api-tag', ...r, tag: tagOf(m[2]!) };
  }
  m = /^repositories\/(.+)$/.exec(rest);
  if (m && !m[1]!.includes('/-/')) return { kind: 'api-repository', ...repository(m[1]!) };
  throw new OciError('NOT_FOUND', 'unknown admin API endpoint');
}
