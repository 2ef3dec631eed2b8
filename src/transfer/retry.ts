/**
 * Retries of one transfer step: on 5xx, 429, timeouts and broken connections (the
 * transient classes of classify()), with exponential backoff and jitter, honouring a
 * 429/503's Retry-After (seconds or an HTTP date). A 4xx, auth or protocol failure is not
 * retried: it would fail the same way again.
 */
import { classify } from '../upstream/classify.js';
import { RemoteError } from '../upstream/registry-client.js';

export interface RetryOptions {
  /** Attempts after the first (default 5). */
  retries: number;
  /** First backoff (ms, default 500); doubles each time. */
  baseDelayMs: number;
  /** Longest wait between attempts (ms, default 30 s), Retry-After included. */
  maxDelayMs: number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  signal?: AbortSignal;
  onRetry?: (info: { attempt: number; delayMs: number; error: Error }) => void;
}

export const DEFAULT_RETRY: RetryOptions = { retries: 5, baseDelayMs: 500, maxDelayMs: 30_000 };

/** Whether a failure is worth another attempt. */
export function isRetryable(err: unknown): boolean {
  return classify(err).transient;
}

/** Milliseconds a Retry-After header asks for, or undefined. */
export function retryAfterMs(value: string | undefined, now: number = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The wait before attempt `attempt` (1-based retry number). */
export function backoffMs(attempt: number, err: unknown, o: Pick<RetryOptions, 'baseDelayMs' | 'maxDelayMs'>, random: () => number = Math.random): number {
  const exp = o.baseDelayMs * 2 ** (attempt - 1);
  const jittered = exp / 2 + random() * (exp / 2);
  const asked = err instanceof RemoteError ? retryAfterMs(err.retryAfter) : undefined;
  return Math.min(o.maxDelayMs, Math.max(jittered, asked ?? 0));
}

const defaultSleep = (ms: number, signal?: AbortSignal): Promise<void> => new Promise((resolve, reject) => {
  if (signal?.aborted) return reject(signal.reason as Error);
  const t = setTimeout(() => {
    signal?.removeEventListener('abort', onAbort);
    resolve();
  }, ms);
  const onAbort = (): void => {
    clearTimeout(t);
    reject(signal!.reason as Error);
  };
  signal?.addEventListener('abort', onAbort, { once: true });
});

export async function withRetry<T>(fn: (attempt: number) => Promise<T>, o: RetryOptions = DEFAULT_RETRY): Promise<T> {
  const sleep = o.sleep ?? defaultSleep;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= o.retries || !isRetryable(err) || o.signal?.aborted) throw err;
      const delayMs = backoffMs(attempt + 1, err, o);
      o.onRetry?.({ attempt: attempt + 1, delayMs, error: err as Error });
      await sleep(delayMs, o.signal);
    }
  }
}
