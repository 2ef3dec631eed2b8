/** Turns upstream failures into the OCI errors clients receive (one place). */
import { errors as undiciErrors } from '../../upstream/undici.js';
import { codeForUpstreamStatus, OciError } from '../../protocol/errors.js';
import { BodyTooLargeError } from '../../upstream/body.js';
import { classify } from '../../upstream/classify.js';
import { UpstreamError } from '../../upstream/errors.js';
import { RemoteError } from '../../upstream/registry-client.js';

export type ContentKind = 'manifest' | 'blob' | 'other';

export function toClientError(err: unknown, upstream: string, kind: ContentKind, what = 'upstream answer'): OciError {
  if (err instanceof OciError) return err;
  if (err instanceof RemoteError) {
    const headers: Record<string, string> = {};
    if (err.retryAfter !== undefined) headers['retry-after'] = err.retryAfter;
    const detail: Record<string, unknown> = { upstream, status: err.status };
    if (err.errors.length) detail.errors = err.errors;
    return new OciError(codeForUpstreamStatus(err.status, kind), err.message, detail, { headers });
  }
  if (err instanceof BodyTooLargeError) {
    return new OciError(kind === 'manifest' ? 'UPSTREAM_MANIFEST_INVALID' : 'UPSTREAM_ERROR', `${what} from ${upstream}: ${err.message}`, { upstream });
  }
  if (err instanceof UpstreamError) {
    if (err.reason === 'down') return new OciError('UNAVAILABLE', err.message, { upstream });
    if (err.reason === 'timeout') return new OciError('UPSTREAM_TIMEOUT', err.message, { upstream });
    return new OciError('UPSTREAM_ERROR', err.message, { upstream });
  }
  if (err instanceof undiciErrors.BodyTimeoutError) {
    return new OciError('UPSTREAM_TIMEOUT', `${what}: upstream ${upstream} stalled mid-body`, { upstream });
  }
  return new OciError('UPSTREAM_ERROR', `${what}: upstream ${upstream} failed (${(err as Error).message})`, { upstream });
}

/** Is this an upstream condition under which a cached tag is served stale? */
export function isTransient(err: unknown): boolean {
  if (err instanceof OciError) return err.status === 429 || err.status === 503 || err.status === 504 || (err.status >= 500 && err.code === 'UPSTREAM_ERROR');
  if (err instanceof BodyTooLargeError) return false;
  return classify(err).transient;
}
