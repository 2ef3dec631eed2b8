/**
 * `regcache copy` against destinations that fail: one answering 429 (with Retry-After) and
 * 503 to some requests, one stopped in the middle of a blob upload and started again. The
 * copy retries with backoff and completes with every digest equal to the source's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLI_PATH, cleanupAll, makeImage, makeLayer, pushImage, runCommand, sha256, skopeoInspectRaw, startForwarder,
  startRegistry, stopAllChildren, tmpDir, waitUntil, type Forwarder, type Image, type Registry,
} from '../helpers/index.js';
import { startStatusInjector, type StatusInjector } from '../helpers/status-injector.js';

let source: Registry;
let work: string;
let img: Image;

beforeAll(async () => {
  work = tmpDir('regcache-copy-faults-');
  source = await startRegistry();
  img = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 6 * 1024 * 1024, seed: 'faults-big' }), makeLayer({ 'small.txt': 'x' })] });
  await pushImage(source.url, 'org/app', 'v1', img);
});

afterAll(async () => {
  await stopAllChildren();
  await cleanupAll();
});

function copyArgs(src: string, dst: string, insecure: string[]): string[] {
  return [CLI_PATH, 'copy', '--insecure', insecure.join(','), `${src}/org/app:v1=${dst}/copy/app:v1`];
}

describe('copy under destination faults', () => {
  let dest: Registry;
  let injector: StatusInjector;

  afterAll(async () => {
    await injector?.close();
  });

  it('429 with Retry-After and 503: retried (waiting as asked), then completes', async () => {
    dest = await startRegistry();
    injector = await startStatusInjector(dest, [
      { match: (m, p) => m === 'POST' && p.includes('/blobs/uploads/'), status: 429, times: 2, headers: { 'retry-after': '2' } },
      { match: (m, p) => m === 'PUT' && p.includes('/manifests/'), status: 503, times: 1 },
      { match: (m, p) => m === 'HEAD' && p.includes('/blobs/'), status: 429, times: 1, headers: { 'retry-after': '1' } },
    ]);
    const r = await runCommand(process.execPath, copyArgs(source.host, injector.host, [source.host, injector.host]), { cwd: work, timeoutMs: 120_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(injector.injected.map((i) => i.status).sort()).toEqual([429, 429, 429, 503]);
    // The wait is the registry's Retry-After (2 s), not the shorter first backoff.
    expect(r.stderr).toMatch(/retry +#1 in 2\.0 s: .*429/);
    expect(sha256(await skopeoInspectRaw(`docker://${dest.host}/copy/app:v1`))).toBe(img.digest);
  });

  it('a destination stopped mid-upload and restarted: the upload starts over and completes', async () => {
    const dest2 = await startRegistry();
    const destFwd: Forwarder = await startForwarder(dest2);
    // The source trickles, so the 6 MiB upload is still running when the destination goes away.
    const slowSource = await startForwarder(source, { trickleBytesPerSec: 3 * 1024 * 1024 });
    try {
      const run = runCommand(process.execPath, copyArgs(slowSource.host, destFwd.host, [slowSource.host, destFwd.host]), { cwd: work, timeoutMs: 120_000 });
      await waitUntil(() => slowSource.bytesToClient > 1024 * 1024 && destFwd.count('PUT', /\/blobs\/uploads\//) > 0, {
        timeoutMs: 30_000, message: 'the big blob upload never started',
      });
      await dest2.stop();
      await new Promise((resolve) => setTimeout(resolve, 500));
      await dest2.restart();
      slowSource.setFault({});
      const r = await run;
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stderr).toMatch(/retry +#1/);
      expect(sha256(await skopeoInspectRaw(`docker://${dest2.host}/copy/app:v1`))).toBe(img.digest);
      // The upload was begun twice (the first cut off), the big blob committed once.
      expect(destFwd.count('POST', /\/copy\/app\/blobs\/uploads\//)).toBeGreaterThanOrEqual(3);
    } finally {
      await slowSource.close();
      await destFwd.close();
    }
  });
});
