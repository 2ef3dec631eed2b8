/**
 * Hosted pushes under load and under a crash, against the real regcache process:
 *  - 20 concurrent pushes of images sharing a layer: every image is complete, the shared
 *    layer is stored once;
 *  - kill -9 during 10 concurrent pushes: after the restart every tag names a complete
 *    image, `fsck` is clean (every stored blob hashes to its name), and the clients that
 *    retry their push succeed.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLI_PATH, cleanupAll, fetchManifest, htpasswdLine, makeImage, makeLayer, pushImage, registryFetch, runCommand,
  startRegcache, stopAllChildren, tmpDir, type Image, type Layer, type Regcache, type RegistryAuth,
} from '../helpers/index.js';

const auth: RegistryAuth = { user: 'ci', password: 'ci-secret' };
let htpasswd: string;

beforeAll(async () => {
  const dir = tmpDir('regcache-hosted-crash-');
  htpasswd = join(dir, 'htpasswd');
  writeFileSync(htpasswd, `${await htpasswdLine('ci', 'ci-secret')}\n`);
});

afterAll(async () => {
  await stopAllChildren();
  await cleanupAll();
});

const start = (): Promise<Regcache> => startRegcache({
  config: {
    hostedRepositories: { 'team/**': {} },
    auth: { htpasswd, anonymousPull: true, rules: [{ users: ['ci'], repositories: ['team/**'], actions: ['push'] }] },
  },
});

/** Every blob of the image the tag names answers HEAD 200 with its size. */
async function complete(rc: Regcache, repo: string, tag: string): Promise<boolean> {
  const m = await fetchManifest(rc.url, repo, tag);
  if (m.status !== 200) return false;
  const doc = JSON.parse(m.bytes.toString()) as { config: { digest: string; size: number }; layers: Array<{ digest: string; size: number }> };
  for (const d of [doc.config, ...doc.layers]) {
    const r = await registryFetch(rc.url, repo, `${rc.url}/v2/${repo}/blobs/${d.digest}`, { method: 'HEAD' });
    if (r.status !== 200 || Number(r.headers.get('content-length')) !== d.size) return false;
  }
  return true;
}

async function metric(rc: Regcache, name: string): Promise<number> {
  const text = await (await fetch(`${rc.url}/metrics`, { headers: { authorization: `Basic ${Buffer.from('ci:ci-secret').toString('base64')}` } })).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1]);
}

describe('hosted pushes: concurrency and crashes', () => {
  it('20 concurrent pushes of images sharing a layer: all complete, the shared layer stored once', async () => {
    const rc = await start();
    try {
      const shared: Layer = makeLayer({ randomBytes: 8 * 1024 * 1024, seed: 'shared' });
      const images: Image[] = Array.from({ length: 20 }, (_, i) => makeImage({ format: 'oci', layers: [shared, makeLayer({ [`own-${i}.txt`]: `image ${i}\n` })] }));
      await Promise.all(images.map((img, i) => pushImage(rc.url, `team/app${i}`, 'v1', img, auth)));
      for (let i = 0; i < 20; i++) expect(await complete(rc, `team/app${i}`, 'v1')).toBe(true);
      // 1 shared layer + 20 own layers + 20 configs.
      expect(await metric(rc, 'regcache_store_blobs')).toBe(41);
    } finally {
      await rc.stop();
    }
  });

  it('kill -9 during 10 concurrent pushes: every tag names a complete image, fsck is clean, retried pushes succeed', async () => {
    const rc = await start();
    try {
      const images: Image[] = Array.from({ length: 10 }, (_, i) => makeImage({
        format: 'oci', layers: [makeLayer({ randomBytes: 6 * 1024 * 1024, seed: `crash-${i}` }), makeLayer({ [`n${i}`]: String(i) })],
      }));
      const pushes = images.map((img, i) => pushImage(rc.url, `team/crash${i}`, 'v1', img, auth).then(() => true, () => false));
      // Let some uploads get under way, then crash.
      await new Promise((r) => setTimeout(r, 150));
      await rc.kill9();
      // The crash interrupted pushes (else this test would prove nothing).
      expect((await Promise.all(pushes)).filter((ok) => !ok).length).toBeGreaterThan(0);
      // The restart's recovery repairs what the crash left (a spool created just before its session was recorded).
      await rc.restart();
      const check = await runCommand(process.execPath, [CLI_PATH, 'fsck', '--config', rc.configPath], { timeoutMs: 60_000 });
      expect(check.code, check.stdout + check.stderr).toBe(0);
      for (let i = 0; i < 10; i++) {
        const m = await fetchManifest(rc.url, `team/crash${i}`, 'v1');
        if (m.status === 200) expect(await complete(rc, `team/crash${i}`, 'v1')).toBe(true);
        else expect(m.status).toBe(404);
      }
      // The clients retry: every push succeeds and every image is complete.
      await Promise.all(images.map((img, i) => pushImage(rc.url, `team/crash${i}`, 'v1', img, auth)));
      for (let i = 0; i < 10; i++) expect(await complete(rc, `team/crash${i}`, 'v1')).toBe(true);
      await rc.stop();
      const after = await runCommand(process.execPath, [CLI_PATH, 'fsck', '--config', rc.configPath], { timeoutMs: 60_000 });
      expect(after.code, after.stdout + after.stderr).toBe(0);
    } finally {
      await rc.stop();
    }
  });
});
