/**
 * Webhook delivery of job events (config `webhooks.<name>`): each event a webhook's filter
 * takes is POSTed as a CloudEvents 1.0 structured JSON body, signed with HMAC-SHA256 when
 * the webhook has a secret (`X-Regcache-Signature: sha256=<hex>` over the exact body),
 * with a timeout per attempt and retries with doubling delays. Deliveries run on their
 * own: a sync never waits for one, and a failing receiver never fails a sync. The URL is
 * the operator's and the only non-upstream host regcache calls; the secret never appears in
 * logs or status.
 */
import { createHmac, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { WebhookConfig } from '../config/types.js';
import type { RegcacheEvent } from '../events/event-bus.js';

export interface DeliveryOutcome {
  webhook: string;
  url: string;
  ok: boolean;
  at: string;
  status?: number;
  error?: string;
  attempts: number;
}

export interface WebhookDeps {
  webhooks(): readonly WebhookConfig[];
  /** After the last attempt of one delivery. */
  outcome(event: RegcacheEvent, o: DeliveryOutcome): void;
  log: Logger;
  now(): number;
  /** Waits between attempts (tests may shorten it). */
  sleep?(ms: number): Promise<void>;
}

export const SIGNATURE_HEADER = 'x-regcache-signature';

/** The CloudEvents 1.0 structured-mode body of an event. */
export function cloudEvent(e: RegcacheEvent, bootId: string): Record<string, unknown> {
  const ce: Record<string, unknown> = {
    specversion: '1.0', id: `${bootId}-${e.id}`, source: 'regcache', type: e.type, time: e.time,
    datacontenttype: 'application/json', data: e.data,
  };
  if (e.subject !== undefined) ce.subject = e.subject;
  return ce;
}

export function sign(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** The URL without its query (which may carry a token) for logs and status. */
function shownUrl(url: string): string {
  const u = new URL(url);
  return `${u.origin}${u.pathname}`;
}

export class Webhooks {
  private readonly bootId = randomUUID().slice(0, 8);
  private readonly inFlight = new Set<Promise<void>>();
  private stopped = false;

  constructor(private readonly d: WebhookDeps) {}

  /** Starts the deliveries of one event; returns at once. */
  publish(e: RegcacheEvent): void {
    if (this.stopped) return;
    for (const w of this.d.webhooks()) {
      if (!w.events.includes(e.type)) continue;
      if (w.jobs && (e.subject === undefined || !w.jobs.includes(e.subject))) continue;
      const p = this.deliver(w, e).catch(() => undefined).finally(() => this.inFlight.delete(p));
      this.inFlight.add(p);
    }
  }

  /** Waits for deliveries in flight, at most `graceMs`, and takes no more. */
  async stop(graceMs: number): Promise<void> {
    this.stopped = true;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.inFlight]),
      new Promise<void>((r) => { timer = setTimeout(r, graceMs); }),
    ]);
    clearTimeout(timer);
  }

  private async deliver(w: WebhookConfig, e: RegcacheEvent): Promise<void> {
    const body = JSON.stringify(cloudEvent(e, this.bootId));
    const headers: Record<string, string> = { 'content-type': 'application/cloudevents+json; charset=utf-8', 'user-agent': 'regcache-webhook' };
    if (w.secret !== undefined) headers[SIGNATURE_HEADER] = sign(w.secret, body);
    const sleep = this.d.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref()));
    let last: { status?: number; error?: string } = {};
    let attempt = 0;
    for (; attempt <= w.retries && !this.stopped; attempt++) {
      if (attempt > 0) await sleep(w.retryDelay * 2 ** (attempt - 1));
      try {
        const res = await fetch(w.url, { method: 'POST', headers, body, redirect: 'manual', signal: AbortSignal.timeout(w.timeout) });
        await res.body?.cancel().catch(() => undefined);
        last = { status: res.status };
        if (res.status >= 200 && res.status < 300) {
          this.done(w, e, { ok: true, attempts: attempt + 1, status: res.status });
          return;
        }
      } catch (err) {
        const c = (err as { cause?: { code?: string } }).cause?.code;
        last = { error: (err as Error).name === 'TimeoutError' ? `no answer within ${w.timeout} ms` : c ?? (err as Error).message };
      }
    }
    this.done(w, e, { ok: false, attempts: attempt, ...last });
  }

  private done(w: WebhookConfig, e: RegcacheEvent, r: Omit<DeliveryOutcome, 'webhook' | 'url' | 'at'>): void {
    const o: DeliveryOutcome = { webhook: w.name, url: shownUrl(w.url), at: new Date(this.d.now()).toISOString(), ...r };
    if (!o.ok) this.d.log.warn({ webhook: w.name, url: o.url, event: e.type, status: o.status, error: o.error, attempts: o.attempts }, 'webhook delivery failed');
    this.d.outcome(e, o);
  }
}
