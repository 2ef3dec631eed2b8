/**
 * Issue 15, what an operator reads: upstream failures at WARN with their cause and health
 * transitions once each (item 5), the upstream's own error text passed on (item 6), logged
 * bytes of JSON answers (item 7), a reload that did not fully apply said as such (item 9),
 * the restart-needed warning compared with the running config (item 12), and the catalog of
 * a per-host port (item 22).
 */
import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanupAll, freePort, httpProbe, makeImage, makeLayer, pushImage, startRegcache, startRegistry, stopAllChildren, waitUntil,
  type Image, type Registry,
} from '../helpers/index.js';

let upstream: Registry;
let img: Image;

beforeAll(async () => {
  upstream = await startRegistry();
  img = makeImage({ format: 'oci', layers: [makeLayer({ 'a.txt': 'operator' })] });
  await pushImage(upstream.url, 'team/app', 'v1', img);
  await pushImage(upstream.url, 'other/tool', 'v1', makeImage({ format: 'oci', layers: [makeLayer({ 'b.txt': 'tool' })] }));
});

afterAll(async () => {
  await upstream?.stop();
  await stopAllChildren();
  await cleanupAll();
});

describe('operator-facing logs and answers', () => {
  it('an unreachable upstream: each failure at WARN with its cause, down and up logged once each', async () => {
    const deadPort = await freePort();
    const rc = await startRegcache({
      config: { upstreams: { 'dead.example': { url: `http://127.0.0.1:${deadPort}` } }, upstreamHealth: { maxFails: 2, failTimeout: '1s' } },
    });
    try {
      for (let i = 0; i < 4; i++) await httpProbe(`${rc.url}/v2/dead.example/team/app/manifests/v1`);
      // Logs are written asynchronously: wait for them.
      await rc.waitForLog((l) => String(l.msg).startsWith('upstream marked down'));
      await waitUntil(() => rc.logs().filter((l) => l.msg === 'upstream request failed').length >= 2, { timeoutMs: 5_000 });
      const failures = rc.logs().filter((l) => l.msg === 'upstream request failed');
      for (const f of failures) {
        expect(f.level).toBe(40);
        expect(f.cause).toBe('refused (ECONNREFUSED)');
        expect(f.upstream).toBe('dead.example');
      }
      expect(rc.logs().filter((l) => l.msg?.toString().startsWith('upstream marked down'))).toHaveLength(1);
      // The upstream comes back: one "up" line.
      const back = await startRegistry({ port: deadPort });
      try {
        await pushImage(back.url, 'team/app', 'v1', img);
        await new Promise((r) => setTimeout(r, 1_100));
        await waitUntil(async () => (await httpProbe(`${rc.url}/v2/dead.example/team/app/manifests/v1`)).status === 200, { timeoutMs: 10_000 });
        await httpProbe(`${rc.url}/v2/dead.example/team/app/manifests/v1`);
        await rc.waitForLog((l) => l.msg === 'upstream is up again');
        await new Promise((r) => setTimeout(r, 300));
        expect(rc.logs().filter((l) => l.msg === 'upstream is up again')).toHaveLength(1);
        expect(rc.logs().filter((l) => l.msg?.toString().startsWith('upstream marked down'))).toHaveLength(1);
      } finally {
        await back.stop();
      }
    } finally {
      await rc.stop();
    }
  });

  it("the upstream's own error is passed on, and JSON answers are logged with their bytes", async () => {
    const rc = await startRegcache({ config: { upstreams: { 'u.example': { url: upstream.url } } } });
    try {
      const missing = await httpProbe(`${rc.url}/v2/u.example/team/app/manifests/nope`);
      expect(missing.status).toBe(404);
      const err = JSON.parse(missing.body.toString()) as { errors: Array<{ code: string; message: string; detail: { errors?: Array<{ code: string }> } }> };
      expect(err.errors[0]!.code).toBe('MANIFEST_UNKNOWN');
      expect(err.errors[0]!.detail.errors?.[0]?.code).toBe('MANIFEST_UNKNOWN');
      const tags = await httpProbe(`${rc.url}/v2/u.example/team/app/tags/list`);
      expect(tags.status).toBe(200);
      await waitUntil(() => rc.logs().some((l) => l.msg === 'request' && String(l.path).endsWith('/tags/list')));
      await waitUntil(() => rc.logs().some((l) => l.msg === 'request' && String(l.path).endsWith('/manifests/nope')));
      const line = rc.logs().find((l) => l.msg === 'request' && String(l.path).endsWith('/tags/list'))!;
      expect(line.bytes).toBe(tags.body.length);
      const errLine = rc.logs().find((l) => l.msg === 'request' && String(l.path).endsWith('/manifests/nope'))!;
      expect(errLine.bytes).toBe(missing.body.length);
    } finally {
      await rc.stop();
    }
  });

  it('a GET with no Accept: the same answer cold and warm (an OCI index)', async () => {
    const idx = (await import('../helpers/index.js')).makeIndex('oci', [img]);
    await (await import('../helpers/index.js')).pushIndex(upstream.url, 'team/multi', 'v1', idx);
    const rc = await startRegcache({ config: { upstreams: { 'u.example': { url: upstream.url } } } });
    try {
      const cold = await httpProbe(`${rc.url}/v2/u.example/team/multi/manifests/v1`);
      const warm = await httpProbe(`${rc.url}/v2/u.example/team/multi/manifests/v1`);
      expect(cold.status).toBe(200);
      expect(warm.status).toBe(200);
      expect(warm.headers['content-type']).toBe(cold.headers['content-type']);
      expect(warm.headers['docker-content-digest']).toBe(idx.digest);
    } finally {
      await rc.stop();
    }
  });

  it('the catalog of a per-host port lists only that upstream, by the names used on that port', async () => {
    const port = await freePort();
    const rc = await startRegcache({ config: { upstreams: { 'u.example': { url: upstream.url, port }, 'v.example': { url: upstream.url } } } });
    try {
      expect((await httpProbe(`${rc.url}/v2/u.example/team/app/manifests/v1`)).status).toBe(200);
      expect((await httpProbe(`${rc.url}/v2/v.example/other/tool/manifests/v1`)).status).toBe(200);
      const all = JSON.parse((await httpProbe(`${rc.url}/v2/_catalog`)).body.toString()) as { repositories: string[] };
      expect(all.repositories).toEqual(['u.example/team/app', 'v.example/other/tool']);
      const onPort = JSON.parse((await httpProbe(`http://127.0.0.1:${port}/v2/_catalog`)).body.toString()) as { repositories: string[] };
      expect(onPort.repositories).toEqual(['team/app']);
    } finally {
      await rc.stop();
    }
  });

  it('a reload: a port that will not bind is reported as not applied; restart-needed keys compare with what runs', async () => {
    const held = await startRegistry();
    const heldPort = Number(new URL(held.url).port);
    const rc = await startRegcache({ config: { upstreams: { 'u.example': { url: upstream.url } } } });
    try {
      const write = (cfg: Record<string, unknown>): void => writeFileSync(rc.configPath, stringify({ ...rc.config, ...cfg }));
      // 1. A restart-only key changes, then changes back: the second reload needs no restart.
      write({ server: { idleTimeout: '300s' } });
      await rc.waitForLog((l) => l.msg === 'these changed keys apply only after a restart');
      write({ server: { idleTimeout: '120s' } });
      await waitUntil(() => rc.logs().filter((l) => l.msg === 'config reloaded').length >= 2, { timeoutMs: 10_000 });
      expect(rc.logs().filter((l) => l.msg === 'these changed keys apply only after a restart')).toHaveLength(1);
      // 2. An upstream port another process holds: the reload says it did not fully apply.
      write({ upstreams: { 'u.example': { url: upstream.url, port: heldPort } } });
      const partial = await rc.waitForLog((l) => l.msg === 'config reloaded only in part: these changes did not apply');
      expect(partial.failed).toEqual(['upstreams.u.example.port']);
    } finally {
      await rc.stop();
      await held.stop();
    }
  });
});
