/**
 * Sync jobs with real components: Debian's docker-registry (many tags) behind a counting
 * forwarder, regcache as a process controlled with `regcache sync`, skopeo as the client.
 * Patterns over a real tag list, a second run that costs one HEAD per tag and no GET, the
 * platform filter counted at the forwarder with the index digest unchanged, kill -9 in the
 * middle of a run then restart, and pre-warmed images pulling with the upstream stopped.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLI_PATH, REPO_ROOT, cleanupAll, httpProbe, makeImage, makeIndex, makeLayer, pushImage, pushIndex, runCommand, skopeoCopy,
  startForwarder, startRegcache, startRegistry, stopAllChildren, tmpDir, type Forwarder, type Image, type Regcache, type Registry,
} from '../helpers/index.js';

const HOST = 'reg.test';
let upstream: Registry;
let fw: Forwarder;
let rc: Regcache;
const web = new Map<string, Image>();
const tagsOf = (major: number): string[] => Array.from({ length: 10 }, (_, i) => `v${major}.${i}`);
const arm = makeImage({ format: 'oci', arch: 'arm64', variant: 'v8', layers: [makeLayer({ randomBytes: 64 * 1024, seed: 'multi-arm' })] });
const amd = makeImage({ format: 'oci', arch: 'amd64', layers: [makeLayer({ randomBytes: 64 * 1024, seed: 'multi-amd' })] });
const multi = makeIndex('oci', [amd, arm]);
const big = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 6 * 1024 * 1024, seed: 'big' })] });

const cli = (args: string[]): ReturnType<typeof runCommand> =>
  runCommand(process.execPath, [CLI_PATH, 'sync', ...args, '--config', rc.configPath], { cwd: REPO_ROOT, timeoutMs: 120_000 });

async function status(name: string): Promise<any> {
  const r = await httpProbe(`${rc.url}/api/v1/sync/${name}`);
  return JSON.parse(r.body.toString('utf8'));
}

async function until(cond: () => Promise<boolean> | boolean, what: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  upstream = await startRegistry();
  for (const major of [1, 2, 3, 4]) {
    for (const tag of tagsOf(major)) {
      const img = makeImage({ format: 'oci', labels: { tag }, layers: [makeLayer({ randomBytes: 4096, seed: `web-${tag}` })] });
      web.set(tag, img);
      await pushImage(upstream.url, 'apps/web', tag, img);
    }
  }
  await pushIndex(upstream.url, 'apps/multi', 'latest', multi);
  await pushImage(upstream.url, 'apps/big', 'v1', big);
  fw = await startForwarder(upstream);
  rc = await startRegcache({
    config: {
      upstreams: { [HOST]: { url: fw.url } },
      retention: { interval: 0 },
      sync: {
        web: { source: `${HOST}/apps/web`, tags: 'v1.*, v2.[0-4]', excludeTags: 'v1.9', enabled: false },
        multi: { source: `${HOST}/apps/multi`, platforms: 'linux/arm64', enabled: false },
        big: { source: `${HOST}/apps/big`, enabled: false, retries: 0 },
      },
    },
  });
}, 180_000);

afterAll(async () => {
  await rc?.stop();
  await fw?.close();
  await upstream?.stop();
  await stopAllChildren();
  await cleanupAll();
});

describe('sync jobs against docker-registry', () => {
  it('syncs the tags the patterns take; a second run makes one HEAD per tag and no GET of a manifest or blob', async () => {
    const expected = [...tagsOf(1).filter((t) => t !== 'v1.9'), 'v2.0', 'v2.1', 'v2.2', 'v2.3', 'v2.4'];
    fw.reset();
    const first = await cli(['now', 'web', '--wait']);
    // Progress as plain lines on stderr (no terminal); the result alone on stdout.
    expect(first.stderr).toMatch(/sync: web: tags \(14\)\nsync: web: tags: 14 done\n$/);
    expect(first.stderr).not.toContain('\x1b');
    expect(first.stdout).toMatch(/^web: SUCCESS \(14 synced, 0 unchanged, 0 failed, \d+ bytes\)\n$/);
    expect(first.code).toBe(0);
    // Each image's config and layer once, each manifest once by digest.
    const blobDigests = expected.flatMap((t) => [web.get(t)!.config.digest, web.get(t)!.layers[0]!.digest]);
    expect(fw.requests.filter((r) => r.method === 'GET' && r.path.includes('/blobs/')).map((r) => r.path.split('/').pop()).sort()).toEqual(blobDigests.sort());
    expect(fw.count('GET', /\/manifests\//)).toBe(14);
    expect(fw.count('HEAD', /\/manifests\//)).toBe(14);

    fw.reset();
    const again = await cli(['now', 'web', '--wait']);
    expect(again.stdout).toBe('web: SUCCESS (0 synced, 14 unchanged, 0 failed, 0 bytes)\n');
    expect(fw.count('HEAD', /\/manifests\//)).toBe(14);
    expect(fw.count('GET', /\/(manifests|blobs)\//)).toBe(0);
    expect(fw.requests.every((r) => r.method === 'HEAD' || r.path.startsWith('/v2/apps/web/tags/list'))).toBe(true);

    const s = await cli(['status', 'web']);
    expect(s.stdout).toMatch(/^web: SUCCESS \(disabled\)\n/);
    const list = await cli(['list']);
    expect(list.stdout).toMatch(/\nweb +SUCCESS \(disabled\) +\S+ +- +0 synced, 14 unchanged, 0 failed\n/);
  });

  it('now --wait on a terminal draws a bar of the tags done and gives the cursor back; the result follows', async () => {
    // Under a pseudo-terminal (util-linux `script`), as a user at a shell would run it.
    const command = [process.execPath, CLI_PATH, 'sync', 'now', 'web', '--wait', '--config', rc.configPath].map((a) => `'${a}'`).join(' ');
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', TERM: 'xterm', HOME: process.env.HOME ?? '/root' };
    const r = await runCommand('script', ['-qfec', command, '/dev/null'], { env, timeoutMs: 120_000 });
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toContain('\x1b[?25l');
    expect(r.stdout.lastIndexOf('\x1b[?25h')).toBeGreaterThan(r.stdout.lastIndexOf('\x1b[?25l'));
    expect(r.stdout).toMatch(/tags \[[=-]+\] 14\/14/);
    expect(r.stdout).not.toContain('sync: web: tags');
    expect(r.stdout).toMatch(/web: SUCCESS \(0 synced, 14 unchanged, 0 failed, 0 bytes\)\r?\n$/);
  });

  it('fetches only the chosen platform (counted at the forwarder) and serves the upstream index digest', async () => {
    fw.reset();
    const r = await cli(['now', 'multi', '--wait']);
    expect(r.code).toBe(0);
    const blobs = fw.requests.filter((q) => q.method === 'GET' && q.path.includes('/blobs/')).map((q) => q.path.split('/').pop()).sort();
    expect(blobs).toEqual([arm.config.digest, arm.layers[0]!.digest].sort());
    const manifests = fw.requests.filter((q) => q.method === 'GET' && q.path.includes('/manifests/')).map((q) => q.path.split('/').pop()).sort();
    expect(manifests).toEqual([multi.digest, arm.digest].sort());
    const head = await httpProbe(`${rc.url}/v2/${HOST}/apps/multi/manifests/latest`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.index.v1+json' } });
    expect(head.headers['docker-content-digest']).toBe(multi.digest);
  });

  it('kill -9 in the middle of a run, then restart: recorded INTERRUPTED, runs again, nothing stuck or corrupt', async () => {
    fw.setFault({ trickleBytesPerSec: 1024 * 1024 });
    fw.reset();
    expect((await cli(['now', 'big'])).stdout).toMatch(/^big: run \S+ started\n$/);
    await until(() => fw.count('GET', /\/blobs\//) > 0, 'the big layer to be fetched');
    expect((await status('big')).state).toBe('SYNCING');
    await rc.kill9();
    fw.setFault({});
    await rc.restart();
    await until(async () => (await status('big')).state === 'SUCCESS', 'the re-run to succeed');
    const d = await status('big');
    expect(d.history.map((r: { trigger: string; result: string }) => `${r.trigger} ${r.result}`)).toEqual(['now INTERRUPTED', 'start SUCCESS']);
    await rc.stop();
    const fsck = await runCommand(process.execPath, [CLI_PATH, 'fsck', '--config', rc.configPath], { cwd: REPO_ROOT, timeoutMs: 120_000 });
    expect(fsck.code, fsck.stdout + fsck.stderr).toBe(0);
    await rc.restart();
  });

  it('pre-warmed images pull with the upstream stopped', async () => {
    await upstream.stop();
    try {
      const dir = tmpDir('regcache-sync-pull-');
      const r = await skopeoCopy(`docker://${rc.host}/${HOST}/apps/web:v1.3`, `oci:${dir}:v1.3`);
      expect(r.code, r.stderr).toBe(0);
      const arm64 = await skopeoCopy(`docker://${rc.host}/${HOST}/apps/multi:latest`, `oci:${dir}:multi`, { arch: 'arm64' });
      expect(arm64.code, arm64.stderr).toBe(0);
    } finally {
      await upstream.restart();
    }
  });
});
