/**
 * Every error code regcache answers with, registered once with its HTTP status (the
 * distribution spec's "Error Codes" table, plus regcache's own). A throw site names a code
 * and may add a message, detail and headers; it can never change the status. Codes of
 * regcache's own that describe an upstream fault carry the spec code clients understand on
 * the wire (`wire`), with a status that says the fault is upstream (502/503/504).
 */

interface CodeSpec {
  status: number;
  /** The `code` sent in the body; defaults to the key. */
  wire?: string;
}

export const ERROR_CODES = {
  // The spec's table.
  BLOB_UNKNOWN: { status: 404 },
  BLOB_UPLOAD_INVALID: { status: 400 },
  BLOB_UPLOAD_UNKNOWN: { status: 404 },
  DIGEST_INVALID: { status: 400 },
  // distribution answers 400: the manifest is what is wrong.
  MANIFEST_BLOB_UNKNOWN: { status: 400 },
  MANIFEST_INVALID: { status: 400 },
  MANIFEST_UNKNOWN: { status: 404 },
  NAME_INVALID: { status: 400 },
  NAME_UNKNOWN: { status: 404 },
  SIZE_INVALID: { status: 400 },
  TAG_INVALID: { status: 400 },
  UNAUTHORIZED: { status: 401 },
  DENIED: { status: 403 },
  UNSUPPORTED: { status: 405 },
  TOOMANYREQUESTS: { status: 429 },
  // Used by registries and understood by clients.
  RANGE_INVALID: { status: 416 },
  PAGINATION_NUMBER_INVALID: { status: 400 },
  REQUEST_INVALID: { status: 400 },
  REQUEST_TOO_LONG: { status: 414, wire: 'REQUEST_INVALID' },
  NOT_FOUND: { status: 404 },
  // Admin API: the request is valid but the state does not allow it (cancel a job that is not running).
  CONFLICT: { status: 409 },
  MANIFEST_TOO_LARGE: { status: 413, wire: 'MANIFEST_INVALID' },
  INTERNAL: { status: 500 },
  // Upstream faults: the client's request was fine, the upstream failed it.
  UNAVAILABLE: { status: 503 },
  UPSTREAM_ERROR: { status: 502 },
  UPSTREAM_TIMEOUT: { status: 504 },
  UPSTREAM_MANIFEST_INVALID: { status: 502, wire: 'MANIFEST_INVALID' },
  UPSTREAM_BLOB_INVALID: { status: 502, wire: 'UPSTREAM_ERROR' },
} as const satisfies Record<string, CodeSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function statusOf(code: ErrorCode): number {
  return ERROR_CODES[code].status;
}

export function wireCode(code: ErrorCode): string {
  const spec: CodeSpec = ERROR_CODES[code];
  return spec.wire ?? code;
}

export class OciError extends Error {
  override name = 'OciError';
  readonly status: number;
  readonly headers: Record<string, string>;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly detail?: unknown,
    opts: { headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.status = statusOf(code);
    this.headers = opts.headers ?? {};
  }

  body(): string {
    const e: { code: string; message: string; detail?: unknown } = { code: wireCode(this.code), message: this.message };
    if (this.detail !== undefined) e.detail = this.detail;
    return JSON.stringify({ errors: [e] });
  }
}

/**
 * The code regcache answers with for an upstream's non-2xx status. 404 keeps its meaning
 * (the content is unknown there); 403 and 429 are passed on; everything else is the
 * upstream's fault, never the client's (a 401 means regcache's own credentials failed).
 */
export function codeForUpstreamStatus(status: number, kind: 'manifest' | 'blob' | 'other'): ErrorCode {
  if (status === 404) return kind === 'manifest' ? 'MANIFEST_UNKNOWN' : kind === 'blob' ? 'BLOB_UNKNOWN' : 'NAME_UNKNOWN';
  if (status === 403) return 'DENIED';
  if (status === 429) return 'TOOMANYREQUESTS';
  if (status === 503) return 'UNAVAILABLE';
  if (status === 504 || status === 408) return 'UPSTREAM_TIMEOUT';
  return 'UPSTREAM_ERROR';
}
