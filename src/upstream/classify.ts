/**
 * One classification of upstream failures, used alike by the failure detector (health),
 * by retries (sync and copy jobs) and by stale serving (a cached tag is served when its
 * upstream fails transiently). Input: an HTTP status, or an error thrown by the client.
 */
import { UpstreamError } from './errors.js';

export type FailureClass =
  | 'ok'
  | 'not-found'
  | 'denied'
  | 'client'
  | 'throttled'
  | 'server'
  | 'timeout'
  | 'unreachable'
  | 'down'
  | 'auth'
  | 'redirect'
  | 'protocol';

export interface Classification {
  class: FailureClass;
  /** Worth retrying later, and a reason to serve a cached tag stale. */
  transient: boolean;
  /** Counts against the upstream's health (failure detector). */
  countsAsFailure: boolean;
}

const TABLE: Record<FailureClass, Omit<Classification, 'class'>> = {
  ok: { transient: false, countsAsFailure: false },
  'not-found': { transient: false, countsAsFailure: false },
  denied: { transient: false, countsAsFailure: false },
  client: { transient: false, countsAsFailure: false },
  throttled: { transient: true, countsAsFailure: true },
  server: { transient: true, countsAsFailure: true },
  timeout: { transient: true, countsAsFailure: true },
  unreachable: { transient: true, countsAsFailure: true },
  // Already marked down: fail fast, do not count again.
  down: { transient: true, countsAsFailure: true },
  // regcache's credentials or the upstream's redirects are wrong: not a passing fault.
  auth: { transient: false, countsAsFailure: false },
  redirect: { transient: false, countsAsFailure: false },
  protocol: { transient: false, countsAsFailure: false },
};

function ofStatus(status: number): FailureClass {
  if (status < 400) return 'ok';
  if (status === 404) return 'not-found';
  if (status === 401 || status === 403) return 'denied';
  if (status === 429) return 'throttled';
  if (status === 408) return 'timeout';
  if (status >= 500) return 'server';
  return 'client';
}

export function classify(statusOrError: unknown): Classification {
  let cls: FailureClass;
  if (typeof statusOrError === 'number') cls = ofStatus(statusOrError);
  else if (statusOrError instanceof UpstreamError) cls = statusOrError.reason;
  else if (statusOrError && typeof statusOrError === 'object' && 'failure' in statusOrError) cls = (statusOrError as { failure: FailureClass }).failure;
  else cls = 'unreachable';
  return { class: cls, ...TABLE[cls] };
}

const TLS_CODES = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|ERR_OSSL_)/;

/**
 * What an operator needs to read in a log line: dns, refused, reset, tls, timeout, or the
 * HTTP status, with the system error code where there is one.
 */
export function causeOf(statusOrError: unknown): string {
  if (typeof statusOrError === 'number') return `status ${statusOrError}`;
  if (statusOrError instanceof UpstreamError) {
    const code = statusOrError.errno;
    if (statusOrError.reason === 'timeout') return 'timeout';
    if (statusOrError.reason !== 'unreachable') return statusOrError.reason;
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `dns (${code})`;
    if (code === 'ECONNREFUSED') return 'refused (ECONNREFUSED)';
    if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET') return `reset (${code})`;
    if (code && TLS_CODES.test(code)) return `tls (${code})`;
    return code ? `unreachable (${code})` : 'unreachable';
  }
  if (statusOrError && typeof statusOrError === 'object' && 'status' in statusOrError) return `status ${String((statusOrError as { status: unknown }).status)}`;
  return 'error';
}
