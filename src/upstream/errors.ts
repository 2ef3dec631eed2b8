/** Failures to get an HTTP answer from an upstream (or its token realm). Messages never hold credentials. */
import { errors as undiciErrors } from './undici.js';

export type UpstreamFailure = 'down' | 'unreachable' | 'timeout' | 'redirect' | 'auth' | 'protocol';

export class UpstreamError extends Error {
  override name = 'UpstreamError';
  constructor(readonly reason: UpstreamFailure, message: string, readonly errno?: string) {
    super(message);
  }
}

function isTimeout(err: unknown): boolean {
  return err instanceof undiciErrors.ConnectTimeoutError || err instanceof undiciErrors.HeadersTimeoutError
    || err instanceof undiciErrors.BodyTimeoutError;
}

/** An undici request error as an UpstreamError: timeout or unreachable. */
export function networkError(host: string, err: unknown): UpstreamError {
  if (err instanceof UpstreamError) return err;
  if (isTimeout(err)) return new UpstreamError('timeout', `${host}: ${(err as Error).message}`);
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  const code = e.code && e.code !== 'UND_ERR_SOCKET' ? e.code : e.cause?.code ?? e.code;
  return new UpstreamError('unreachable', `${host} unreachable (${code ?? e.message})`, code);
}
