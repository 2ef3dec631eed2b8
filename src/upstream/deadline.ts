/**
 * A total deadline for one small upstream answer (manifest, referrers, tag list, token):
 * headers and body together. The idle timeout alone lets an upstream that trickles one
 * byte every few seconds keep a client waiting for minutes; a blob may legitimately take
 * long, so blobs keep only the idle timeout.
 */
import type { Readable } from 'node:stream';
import { errors as undiciErrors } from './undici.js';

/**
 * Reported as undici's body timeout, so every layer that already maps upstream timeouts
 * (504 `UPSTREAM_TIMEOUT`, stale fallback, the failure detector) maps this one too.
 */
export class TotalDeadlineError extends undiciErrors.BodyTimeoutError {
  constructor(ms: number, what: string) {
    super(`no complete ${what} within ${ms / 1000} s (upstreamTimeouts.manifestTotal)`);
  }
}

export interface Deadline {
  /** Aborts with a TotalDeadlineError when the deadline passes (combined with the caller's signal). */
  readonly signal: AbortSignal;
  /** `p`, or the deadline's error if it passes first (for steps that cannot take a signal). */
  race<T>(p: Promise<T>): Promise<T>;
  /** Keeps the deadline running until `body` closes (the answer is only complete at its end). */
  holdUntilClosed(body: Readable): void;
  /** Stops the timer (the answer completed or failed otherwise). */
  clear(): void;
}

/** Starts a deadline of `ms` now. */
export function startDeadline(ms: number, what: string, outer?: AbortSignal): Deadline {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(new TotalDeadlineError(ms, what)), ms);
  timer.unref();
  const signal = outer ? AbortSignal.any([outer, ctl.signal]) : ctl.signal;
  const clear = (): void => clearTimeout(timer);
  return {
    signal,
    race<T>(p: Promise<T>): Promise<T> {
      if (ctl.signal.aborted) return Promise.reject(ctl.signal.reason as Error);
      return new Promise<T>((resolve, reject) => {
        const onAbort = (): void => reject(ctl.signal.reason as Error);
        ctl.signal.addEventListener('abort', onAbort, { once: true });
        p.then(resolve, reject).finally(() => ctl.signal.removeEventListener('abort', onAbort));
      });
    },
    holdUntilClosed(body: Readable): void {
      if (body.destroyed || body.readableEnded) clear();
      else body.once('close', clear);
    },
    clear,
  };
}
