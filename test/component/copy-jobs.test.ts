/**
 * Scheduled copies in the jobs service, in-process in front of the fake upstream (as the
 * source, through regcache's upstream config): live reload adds, changes and removes copy
 * jobs; a failed run records its error, fires copy.started/copy.failed and schedules its
 * retry; the copy flags of the job (skipMissing) apply after a reload; state lives under
 * `copy/<name>` and goes when the job goes. Real registries: test/integration/copy-jobs.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/validate.js';
import { imageParts } from '../contract/repository.contract.js';
import { HOST, startProxy, type ProxyHarness } from './proxy-harness.js';

// The destination is never reached: the source is missing (port 9 is discard, loopback only).
const MAPPING = `${HOST}/lib/missing:v1 127.0.0.1:9/mirror/missing:v1`;

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('copy jobs in the jobs service', () => {
  let h: ProxyHarness;
  afterEach(async () => h?.close());
  const reload = (doc: Record<string, unknown>): Promise<unknown> => h.app.reload(validateConfig({
    listen: '127.0.0.1:0', dataDir: h.app.currentConfig.dataDir, logLevel: 'silent', retention: { interval: 0 },
    upstreams: { [HOST]: { url: h.up.url } }, cache: { tagTTL: '5m' }, ...doc,
  }));

  it('adds, changes and removes copy jobs live, with status, events, retries and state', async () => {
    h = await startProxy({});
    const events: Array<{ type: string; subject?: string; data: Record<string, unknown> }> = [];
    h.app.events.subscribe((e) => events.push(e));
    await reload({ copy: { nightly: { mappings: [MAPPING], enabled: false, retries: 2, retryDelay: '1h', insecure: ['127.0.0.1:9'] } } });
    expect(h.app.sync.list()).toEqual([expect.objectContaining({ name: 'nightly', kind: 'copy', state: 'NEVER_RUN', enabled: false })]);
    expect(h.app.sync.get('nightly')!.config).toMatchObject({ mappings: [MAPPING], retries: 2 });
    expect(h.app.sync.get('nightly')!.config).not.toHaveProperty('kind');

    const failed = await h.app.sync.runNow('nightly', { wait: true });
    expect(failed).toMatchObject({ trigger: 'now', result: 'FAIL', counts: { failed: 1 } });
    expect(failed!.error).toMatch(/^1 of 1 images failed; first: .*missing/);
    expect(events.map((e) => `${e.type} ${e.subject}`)).toEqual(['copy.started nightly', 'copy.failed nightly']);
    expect(events[1]!.data).toMatchObject({ job: 'nightly', result: 'FAIL' });
    // A failed run is retried (1h later here), even for a disabled job, like sync jobs.
    const d = h.app.sync.get('nightly')!;
    expect(d).toMatchObject({ state: 'FAIL', retriesLeft: 1, lastError: failed!.error });
    expect(Date.parse(d.nextRun!) - h.clock.now).toBe(3_600_000);
    const keys = (await h.app.meta.listState('jobs')).map((r) => r.key);
    expect(keys).toEqual(['copy/nightly']);

    // skipMissing applies on reload: the same run now succeeds with the image skipped.
    await reload({ copy: { nightly: { mappings: [MAPPING], enabled: false, skipMissing: true, insecure: ['127.0.0.1:9'] } } });
    const skipped = await h.app.sync.runNow('nightly', { wait: true });
    expect(skipped).toMatchObject({ result: 'SUCCESS', counts: { synced: 0, unchanged: 1, failed: 0 } });
    expect(events.slice(2).map((e) => e.type)).toEqual(['copy.started', 'copy.succeeded']);
    expect(h.app.sync.get('nightly')!.history.map((r) => `${r.trigger} ${r.result}`)).toEqual(['now FAIL', 'now SUCCESS']);

    // The name becomes a sync job: the copy job and its state go, the sync job starts fresh.
    await reload({ sync: { nightly: { source: `${HOST}/lib/app`, enabled: false } } });
    expect(h.app.sync.list()).toEqual([expect.objectContaining({ name: 'nightly', kind: 'sync', state: 'NEVER_RUN' })]);
    expect((await h.app.meta.listState('jobs')).map((r) => r.key)).toEqual([]);
    await reload({});
    expect(h.app.sync.list()).toEqual([]);
  });

  it('cancel stops a running copy: CANCEL, copy.cancelled, nothing left running', async () => {
    h = await startProxy({ copy: { app: { mappings: [`${HOST}/lib/app:v1 127.0.0.1:9/mirror/app:v1`], enabled: false, insecure: ['127.0.0.1:9'] } } });
    const p = imageParts('lib/app:v1');
    h.up.putBlob('lib/app', p.config);
    h.up.putBlob('lib/app', p.layer);
    h.up.putManifest('lib/app', p.manifest, 'application/vnd.oci.image.manifest.v1+json', 'v1');
    const events: string[] = [];
    h.app.events.subscribe((e) => events.push(e.type));
    await h.app.sync.runNow('app');
    // The destination refuses connections: the copy retries with backoff until cancelled.
    await until(() => h.app.sync.get('app')!.state === 'SYNCING' && h.up.requests.length > 0, 'the run to reach the source');
    expect(h.app.sync.cancel('app')).toBe(true);
    await until(() => events.length === 2, 'the end event');
    expect(events).toEqual(['copy.started', 'copy.cancelled']);
    expect(h.app.sync.get('app')).toMatchObject({ state: 'CANCEL', lastRun: { result: 'CANCEL', error: 'cancelled' } });
    expect(h.app.sync.cancel('app')).toBe(false);
  });

  it('a mapping file that went bad fails the run with the file and line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'regcache-copyjob-'));
    try {
      const f = join(dir, 'm.txt');
      writeFileSync(f, `${MAPPING}\n`);
      h = await startProxy({ copy: { f: { files: [f], enabled: false, retries: 0 } } });
      writeFileSync(f, `${MAPPING}\nnot-a-reference\n`);
      const run = await h.app.sync.runNow('f', { wait: true });
      expect(run).toMatchObject({ result: 'FAIL', counts: { synced: 0, failed: 0 } });
      expect(run!.error).toContain(`${f}:2: `);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
