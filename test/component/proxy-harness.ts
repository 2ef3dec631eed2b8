/**
 * An in-process regcache (the App and its services, listening on loopback) in front of a
 * fake upstream, with a settable clock: for component tests that assert upstream hit counts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { App } from '../../src/app.js';
import { validateConfig } from '../../src/config/validate.js';
import type { JobControl } from '../../src/jobs/job-control.js';
import type { Repository } from '../../src/registry/repository.js';
import { startFakeUpstream, type FakeUpstream } from './fake-upstream.js';

export const HOST = 'fake.test';

export interface ProxyHarness {
  app: App;
  up: FakeUpstream;
  clock: { now: number };
  repo(name: string): Repository;
  /** Stops the App (keeping its data) and starts a new one on the same data and upstream. */
  restart(): Promise<ProxyHarness>;
  close(): Promise<void>;
}

export async function startProxy(extra: Record<string, unknown> = {}, opts: { jobs?: JobControl } = {}, reuse?: { up: FakeUpstream; dataDir: string; clock: { now: number } }): Promise<ProxyHarness> {
  const up = reuse?.up ?? await startFakeUpstream();
  const dataDir = reuse?.dataDir ?? mkdtempSync(join(tmpdir(), 'regcache-component-'));
  const clock = reuse?.clock ?? { now: Date.parse('2026-06-01T00:00:00Z') };
  const config = validateConfig({
    listen: '127.0.0.1:0', dataDir, logLevel: 'silent', retention: { interval: 0 },
    upstreams: { [HOST]: { url: up.url } }, cache: { tagTTL: '5m' }, ...extra,
  });
  const app = new App(config, { log: pino({ level: 'silent' }), now: () => clock.now, defaultMetrics: false, ...(opts.jobs ? { jobs: opts.jobs } : {}) });
  await app.start();
  return {
    app, up, clock,
    repo: (name) => app.namespace.resolve({}, HOST, name),
    restart: async () => {
      await app.stop(1000);
      return startProxy(extra, opts, { up, dataDir, clock });
    },
    close: async () => {
      await app.stop(1000);
      await up.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
