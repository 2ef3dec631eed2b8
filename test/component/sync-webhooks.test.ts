/**
 * Events of sync runs: one per run to the event bus, to metrics and to webhooks (a
 * receiver in the test): CloudEvents bodies signed with HMAC-SHA256, retried when the
 * receiver fails, filtered by event, and never holding up a run.
 */
import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { imageParts } from '../contract/repository.contract.js';
import { HOST, startProxy, type ProxyHarness } from './proxy-harness.js';

interface Delivery { headers: IncomingMessage['headers']; raw: string; body: any }

async function receiver(answer: (d: Delivery, n: number, res: ServerResponse) => void): Promise<{ url: string; got: Delivery[]; close(): Promise<void> }> {
  const got: Delivery[] = [];
  const open = new Set<ServerResponse>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const d = { headers: req.headers, raw, body: JSON.parse(raw) };
      got.push(d);
      open.add(res);
      res.on('close', () => open.delete(res));
      answer(d, got.length, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook?token=t0ken`, got,
    close: () => new Promise<void>((r) => { for (const res of open) res.destroy(); server.close(() => r()); }),
  };
}

const ok = (_d: Delivery, _n: number, res: ServerResponse): void => { res.writeHead(204); res.end(); };

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function seed(h: ProxyHarness, tag: string): void {
  const p = imageParts(tag);
  h.up.putBlob('lib/app', p.config);
  h.up.putBlob('lib/app', p.layer);
  h.up.putManifest('lib/app', p.manifest, 'application/vnd.oci.image.manifest.v1+json', tag);
}

describe('sync events and webhooks', () => {
  let h: ProxyHarness;
  let r: Awaited<ReturnType<typeof receiver>> | undefined;
  afterEach(async () => {
    await h?.close();
    await r?.close();
    r = undefined;
  });

  it('one signed CloudEvent per run start and end, and metrics by job and result', async () => {
    r = await receiver(ok);
    h = await startProxy({
      sync: { app: { source: `${HOST}/lib/app`, enabled: false } },
      webhooks: { ops: { url: r.url, secret: 'hunter2' } },
    });
    seed(h, 'v1');
    seed(h, 'v2');
    const bus: string[] = [];
    h.app.events.subscribe((e) => bus.push(`${e.type} ${e.subject}`));
    await h.app.sync.runNow('app', { wait: true });
    await h.app.sync.runNow('app', { wait: true });
    expect(bus).toEqual(['sync.started app', 'sync.succeeded app', 'sync.started app', 'sync.succeeded app']);
    await until(() => r!.got.length === 4, 'four deliveries');
    const types = r.got.map((d) => d.body.type).sort();
    expect(types).toEqual(['sync.started', 'sync.started', 'sync.succeeded', 'sync.succeeded']);
    for (const d of r.got) {
      expect(d.headers['content-type']).toBe('application/cloudevents+json; charset=utf-8');
      expect(d.headers['x-regcache-signature']).toBe(`sha256=${createHmac('sha256', 'hunter2').update(d.raw).digest('hex')}`);
      expect(d.body).toMatchObject({ specversion: '1.0', source: 'regcache', subject: 'app', datacontenttype: 'application/json' });
      expect(d.raw).not.toContain('hunter2');
    }
    const end = r.got.find((d) => d.body.type === 'sync.succeeded')!.body;
    expect(end.data).toMatchObject({ job: 'app', result: 'SUCCESS', counts: { failed: 0 } });
    expect(new Set(r.got.map((d) => d.body.id)).size).toBe(4);
    await until(() => h.app.sync.get('app')!.lastWebhook !== undefined, 'the delivery outcome');
    // The status shows the outcome, without the URL's query (it may carry a token).
    expect(h.app.sync.get('app')!.lastWebhook).toMatchObject({ ok: true, status: 204, url: r.url.replace(/\?.*/, '') });

    // The receiver records a delivery before it answers; the sender counts it after the answer.
    const counted = 'regcache_webhook_deliveries_total{webhook="ops",result="ok"} 4';
    let m = '';
    const deadline = Date.now() + 10_000;
    while (!(m = await h.app.metrics.registry.metrics()).includes(counted) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(m).toContain('regcache_sync_runs_total{job="app",result="SUCCESS"} 2');
    expect(m).toContain('regcache_sync_status{job="app",state="SUCCESS"} 1');
    expect(m).toContain('regcache_sync_status{job="app",state="SYNCING"} 0');
    expect(m).toContain('regcache_sync_pending_tags{job="app"} 0');
    expect(m).toMatch(/regcache_sync_bytes_total\{job="app"\} \d{6,}/);
    expect(m).toMatch(/regcache_sync_last_success_timestamp_seconds\{job="app"\} \d+/);
    expect(m).toContain('regcache_webhook_deliveries_total{webhook="ops",result="ok"} 4');
  });

  it('a failing receiver is retried with backoff; the last outcome shows in the status', async () => {
    r = await receiver((_d, n, res) => { res.writeHead(n <= 2 ? 500 : 200); res.end(); });
    h = await startProxy({
      sync: { app: { source: `${HOST}/lib/app`, enabled: false } },
      webhooks: { ops: { url: r.url, events: ['sync.succeeded'], retries: 3, retryDelay: '20ms' } },
    });
    seed(h, 'v1');
    await h.app.sync.runNow('app', { wait: true });
    await until(() => h.app.sync.get('app')!.lastWebhook !== undefined, 'the delivery outcome');
    expect(r.got.map((d) => d.body.type)).toEqual(['sync.succeeded', 'sync.succeeded', 'sync.succeeded']);
    expect(new Set(r.got.map((d) => d.body.id)).size).toBe(1);
    expect(h.app.sync.get('app')!.lastWebhook).toMatchObject({ ok: true, status: 200 });
  });

  it('gives up after its retries, and a receiver that never answers does not hold up runs', async () => {
    r = await receiver(() => undefined); // never answers
    h = await startProxy({
      sync: { app: { source: `${HOST}/lib/app`, enabled: false } },
      webhooks: { ops: { url: r.url, retries: 1, retryDelay: '10ms', timeout: '300ms', jobs: ['app'] } },
    });
    seed(h, 'v1');
    const run = await h.app.sync.runNow('app', { wait: true });
    expect(run!.result).toBe('SUCCESS');
    // The run ended while its deliveries still hang at the receiver.
    expect(h.app.sync.get('app')!.lastWebhook).toBeUndefined();
    await until(() => h.app.sync.get('app')!.lastWebhook !== undefined, 'the delivery to give up');
    expect(h.app.sync.get('app')!.lastWebhook).toMatchObject({ ok: false, error: 'no answer within 300 ms' });
    // Two events, each tried twice, then given up.
    const failed = 'regcache_webhook_deliveries_total{webhook="ops",result="failed"} 2';
    for (let i = 0; i < 500 && !(await h.app.metrics.registry.metrics()).includes(failed); i++) await new Promise((res) => setTimeout(res, 20));
    expect(await h.app.metrics.registry.metrics()).toContain(failed);
    expect(r.got).toHaveLength(4);
  });
});
