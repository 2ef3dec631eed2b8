/**
 * Parses a request target (`req.url`, raw, never percent-decoded) into the registry
 * endpoint it names. Pure: checks the grammar and nothing else. Names and tags have no
 * legal percent-encoding, so any `%` is simply invalid — there is nothing to decode and
 * no way to smuggle `..`, `/` or NUL through an escape.
 */
import { parseAdminPath, type AdminEndpoint } from './admin-paths.js';
import { OciError } from './errors.js';
import { isValidDigest, isValidName, isValidTag, looksLikeDigest, MAX_NAME_LENGTH } from './grammar.js';

export type Endpoint =
  | { kind: 'base' }
  | { kind: 'catalog'; n?: number; last?: string }
  | { kind: 'manifest'; name: string; reference: string; isDigest: boolean }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'upload'; name: string; session?: string }
  | { kind: 'tags'; name: string; n?: number; last?: string }
  | { kind: 'referrers'; name: string; digest: string; artifactType?: string }
  | { kind: 'healthz' }
  | { kind: 'readyz' }
  | { kind: 'metrics' }
  | AdminEndpoint
  | { kind: 'api-sync'; job?: string; action?: 'now' | 'cancel' };

export interface ParsedTarget {
  endpoint: Endpoint;
  /** The single `ns` query value, when present. */
  ns?: string;
  query: URLSearchParams;
}

const MAX_TARGET_LENGTH = 4096;

/** The name part before the endpoint suffix; the upstream prefix is resolved later (namespace.ts). */
function nameFromPath(raw: string): string {
  if (raw.length > MAX_NAME_LENGTH + 256) throw new OciError('NAME_INVALID', 'repository name too long');
  // Validated after the upstream prefix (which may contain ':' for host:port) is split off.
  return raw;
}

function single(query: URLSearchParams, key: string): string | undefined {
  const all = query.getAll(key);
  if (all.length > 1) throw new OciError('REQUEST_INVALID', `query parameter ${key} given more than once`);
  return all[0];
}

function pageSize(query: URLSearchParams): number | undefined {
  const n = single(query, 'n');
  if (n === undefined) return undefined;
  if (!/^\d{1,6}$/.test(n)) throw new OciError('PAGINATION_NUMBER_INVALID', 'n must be a non-negative integer');
  return Number(n);
}

export function parseTarget(target: string): ParsedTarget {
  if (target.length > MAX_TARGET_LENGTH) throw new OciError('REQUEST_TOO_LONG', 'request target too long');
  const q = target.indexOf('?');
  const path = q === -1 ? target : target.slice(0, q);
  const query = new URLSearchParams(q === -1 ? '' : target.slice(q + 1));
  const ns = single(query, 'ns');
  const result = (endpoint: Endpoint): ParsedTarget => (ns === undefined ? { endpoint, query } : { endpoint, ns, query });

  if (path === '/healthz') return result({ kind: 'healthz' });
  if (path === '/readyz') return result({ kind: 'readyz' });
  if (path === '/metrics') return result({ kind: 'metrics' });
  if (path === '/v2' || path === '/v2/') return result({ kind: 'base' });
  if (path === '/api/v1/sync' || path.startsWith('/api/v1/sync/')) return result(syncApiPath(path));
  const admin = parseAdminPath(path, query);
  if (admin) return result(admin);
  if (!path.startsWith('/v2/')) throw new OciError('NOT_FOUND', 'not a registry API path');
  if (path.includes('%')) throw new OciError('NAME_INVALID', 'percent-encoding is not allowed in registry paths');
  const rest = path.slice(4);

  if (rest === '_catalog') {
    const last = single(query, 'last');
    const e: Endpoint = { kind: 'catalog' };
    const n = pageSize(query);
    if (n !== undefined) e.n = n;
    if (last !== undefined) e.last = last;
    return result(e);
  }

  let m = /^(.+)\/tags\/list$/.exec(rest);
  if (m) {
    const e: Endpoint = { kind: 'tags', name: nameFromPath(m[1]!) };
    const n = pageSize(query);
    if (n !== undefined) e.n = n;
    const last = single(query, 'last');
    if (last !== undefined) {
      if (!isValidTag(last)) throw new OciError('TAG_INVALID', 'last is not a valid tag');
      e.last = last;
    }
    return result(e);
  }
  m = /^(.+)\/blobs\/uploads(?:\/([^/]*))?$/.exec(rest);
  if (m) {
    const e: Endpoint = { kind: 'upload', name: nameFromPath(m[1]!) };
    if (m[2]) {
      if (!/^[A-Za-z0-9_-]{1,128}$/.test(m[2])) throw new OciError('BLOB_UPLOAD_INVALID', 'invalid upload session id');
      e.session = m[2];
    }
    return result(e);
  }

  m = /^(.+)\/(manifests|blobs|referrers)\/([^/]+)$/.exec(rest);
  if (!m) throw new OciError('NOT_FOUND', 'unknown registry endpoint');
  const name = nameFromPath(m[1]!);
  const ref = m[3]!;
  switch (m[2]) {
    case 'manifests':
      if (looksLikeDigest(ref)) {
        if (!isValidDigest(ref)) throw new OciError('DIGEST_INVALID', 'invalid or unsupported digest', { digest: ref.slice(0, 200) });
        return result({ kind: 'manifest', name, reference: ref, isDigest: true });
      }
      if (!isValidTag(ref)) throw new OciError('TAG_INVALID', 'invalid tag', { tag: ref.slice(0, 200) });
      return result({ kind: 'manifest', name, reference: ref, isDigest: false });
    case 'blobs':
      if (!isValidDigest(ref)) throw new OciError('DIGEST_INVALID', 'invalid or unsupported digest', { digest: ref.slice(0, 200) });
      return result({ kind: 'blob', name, digest: ref });
    default: {
      if (!isValidDigest(ref)) throw new OciError('DIGEST_INVALID', 'invalid or unsupported digest', { digest: ref.slice(0, 200) });
      const e: Endpoint = { kind: 'referrers', name, digest: ref };
      const at = single(query, 'artifactType');
      if (at !== undefined) e.artifactType = at;
      return result(e);
    }
  }
}

/** `/api/v1/sync[/<job>[/now|/cancel]]` (job names: config `sync.<name>`). */
function syncApiPath(path: string): Endpoint {
  const m = /^\/api\/v1\/sync(?:\/([a-zA-Z0-9][a-zA-Z0-9._-]{0,62})(?:\/(now|cancel))?)?\/?$/.exec(path);
  if (!m) throw new OciError('NOT_FOUND', 'unknown sync API path (/api/v1/sync, /api/v1/sync/<job>, /api/v1/sync/<job>/now|cancel)');
  const e: Endpoint = { kind: 'api-sync' };
  if (m[1] !== undefined) e.job = m[1];
  if (m[2] !== undefined) e.action = m[2] as 'now' | 'cancel';
  return e;
}

/** Name validation, for use after the upstream prefix has been removed. */
export function assertValidName(name: string): void {
  if (!isValidName(name)) throw new OciError('NAME_INVALID', 'invalid repository name', { name: name.slice(0, 300) });
}
