/**
 * OCI distribution error codes, each registered once with its HTTP status
 * (spec: "Error Codes"). Every client-facing failure becomes an OciError.
 */

export const ERROR_STATUS = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 404,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  TAG_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
  // Not in the spec's table but used by registries and understood by clients.
  RANGE_INVALID: 416,
  PAGINATION_NUMBER_INVALID: 400,
  UNAVAILABLE: 503,
  UPSTREAM_ERROR: 502,
  UPSTREAM_TIMEOUT: 504,
  REQUEST_INVALID: 400,
  NOT_FOUND: 404,
  INTERNAL: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export class OciError extends Error {
  override name = 'OciError';
  readonly status: number;
  readonly headers: Record<string, string>;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly detail?: unknown,
    opts: { status?: number; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.status = opts.status ?? ERROR_STATUS[code];
    this.headers = opts.headers ?? {};
  }

  body(): string {
    const e: { code: string; message: string; detail?: unknown } = { code: this.code, message: this.message };
    if (this.detail !== undefined) e.detail = this.detail;
    return JSON.stringify({ errors: [e] });
  }
}

/** Maps an upstream error status to the code regcache answers with. */
export function codeForUpstreamStatus(status: number, kind: 'manifest' | 'blob' | 'other'): ErrorCode {
  if (status === 404) return kind === 'manifest' ? 'MANIFEST_UNKNOWN' : kind === 'blob' ? 'BLOB_UNKNOWN' : 'NAME_UNKNOWN';
  if (status === 401) return 'UNAUTHORIZED';
  if (status === 403) return 'DENIED';
  if (status === 429) return 'TOOMANYREQUESTS';
  if (status === 400) return kind === 'manifest' ? 'MANIFEST_INVALID' : 'REQUEST_INVALID';
  return 'UPSTREAM_ERROR';
}
