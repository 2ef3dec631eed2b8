/** One-shot HTTP requests without connection pooling (nothing stays open afterwards), and readiness polling. */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { listensOn } from './ports.js';

export interface ProbeResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface ProbeOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  timeoutMs?: number;
}

/** A single plain-HTTP request on its own connection (agent: false, Connection: close). */
export function httpProbe(url: string, opts: ProbeOptions = {}): Promise<ProbeResponse> {
  return new Promise((resolve, reject) => {
    const https = url.startsWith('https:');
    const req = (https ? httpsRequest : httpRequest)(
      url,
      {
        // Test servers use self-signed certificates.
        ...(https ? { rejectUnauthorized: false } : {}),
        method: opts.method ?? 'GET',
        agent: false,
        headers: { connection: 'close', ...opts.headers },
        timeout: opts.timeoutMs ?? 5_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.once('error', reject);
      },
    );
    req.once('timeout', () => req.destroy(new Error(`timeout after ${opts.timeoutMs ?? 5_000} ms: ${url}`)));
    req.once('error', reject);
    req.end(opts.body);
  });
}

export interface WaitHttpOptions {
  timeoutMs?: number;
  /** Which status counts as ready (default: any). */
  ready?: (status: number) => boolean;
  /** Checked on every attempt: a string aborts the wait with that message (e.g. "process exited"). */
  abortIf?: () => string | undefined;
  /**
   * The process that must be the one answering: the answer counts only once this pid holds the
   * listening socket on the URL's port. Without it, another test's server that took a port
   * between `freePort()` and the bind (parallel test files) passes as ready, and the test then
   * talks to the wrong server (seen once in CI: a 404 from a foreign /v2/).
   */
  answeredBy?: number;
}

/** Polls `url` until it answers with a ready status; throws on timeout with the last error seen. */
export async function waitForHttp(url: string, opts: WaitHttpOptions = {}): Promise<number> {
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  const ready = opts.ready ?? (() => true);
  let last = 'no attempt';
  for (;;) {
    const abort = opts.abortIf?.();
    if (abort !== undefined) throw new Error(abort);
    try {
      const r = await httpProbe(url, { timeoutMs: 1_000 });
      const ours = opts.answeredBy === undefined || listensOn(opts.answeredBy, Number(new URL(url).port));
      if (ready(r.status) && ours) return r.status;
      last = ours ? `status ${r.status}` : `status ${r.status} from a process other than ${opts.answeredBy}`;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${url} not ready after ${opts.timeoutMs ?? 15_000} ms (last: ${last})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Polls a predicate until it is true; throws `message` on timeout. */
export async function waitUntil(pred: () => boolean | Promise<boolean>, opts: { timeoutMs?: number; intervalMs?: number; message?: string } = {}): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(opts.message ?? `condition not met after ${opts.timeoutMs ?? 10_000} ms`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 25));
  }
}
