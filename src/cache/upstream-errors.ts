/** Turns upstream failures and non-2xx answers into the OCI errors clients receive. */
import type { Readable } from 'node:stream';
import { codeForUpstreamStatus, OciError } from '../protocol/errors.js';
import { errors as undiciErrors } from 'undici';
import { BodyTooLargeError, discard, readAtMost } from '../upstream/body.js';
import { UpstreamError, type UpstreamResponse } from '../upstream/client.js';

export function fromUpstreamFailure(err: unknown, upstream: string): OciError {
  if (err instanceof OciError) return err;
  if (err instanceof UpstreamError) {
    if (err.reason === 'down') return new OciError('UNAVAILABLE', err.message, { upstream });
    if (err.reason === 'timeout') return new OciError('UPSTREAM_TIMEOUT', err.message, { upstream });
    return new OciError('UPSTREAM_ERROR', err.message, { upstream });
  }
  return new OciError('UPSTREAM_ERROR', `upstream ${upstream} failed: ${(err as Error).message}`, { upstream });
}

/** An OCI error for a non-2xx upstream answer; drains the body. */
export function fromUpstreamStatus(res: UpstreamResponse, upstream: string, kind: 'manifest' | 'blob' | 'other'): OciError {
  discard(res.body);
  const code = codeForUpstreamStatus(res.status, kind);
  const status = res.status >= 400 && res.status < 600 && res.status !== 401 ? res.status : undefined;
  const headers: Record<string, string> = {};
  const retryAfter = res.headers['retry-after'];
  if (typeof retryAfter === 'string') headers['retry-after'] = retryAfter;
  const opts: { status?: number; headers: Record<string, string> } = { headers };
  // 401 from upstream means regcache's own credentials failed: not the client's to fix.
  if (res.status === 401) opts.status = 502;
  else if (status !== undefined) opts.status = status;
  return new OciError(res.status === 401 ? 'UPSTREAM_ERROR' : code, `upstream ${upstream} answered ${res.status}`, { upstream, status: res.status }, opts);
}

/** Is this an upstream condition under which a cached tag should be served stale? */
export function isTransient(errOrStatus: unknown): boolean {
  if (typeof errOrStatus === 'number') return errOrStatus >= 500 || errOrStatus === 429 || errOrStatus === 408;
  return errOrStatus instanceof UpstreamError && errOrStatus.reason !== 'auth' && errOrStatus.reason !== 'redirect';
}

export function header(res: UpstreamResponse, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Reads a body up to `limit` bytes; refuses (and stops reading) beyond it. An upstream that
 * fails mid-body is an upstream error (502), not an internal one.
 */
export async function readLimited(body: Readable, limit: number, what: string): Promise<Buffer> {
  try {
    return await readAtMost(body, limit);
  } catch (err) {
    if (err instanceof BodyTooLargeError) {
      throw new OciError('MANIFEST_INVALID', `${what} is larger than the ${limit}-byte limit`, undefined, { status: 502 });
    }
    const reason = err instanceof undiciErrors.BodyTimeoutError ? 'UPSTREAM_TIMEOUT' : 'UPSTREAM_ERROR';
    throw new OciError(reason, `${what}: upstream failed mid-body (${(err as Error).message})`);
  }
}
