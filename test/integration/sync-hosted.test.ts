/**
 * A sync job with a hosted target against real components: Debian's docker-registry as the
 * upstream behind a counting forwarder, regcache as a process driven with `regcache sync`,
 * skopeo as the client. The mirror serves the upstream's exact digests (the index unchanged
 * with a platform filter) with no upstream request, refuses a skopeo push naming the job,
 * and drops a tag deleted upstream at the next run.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLI_PATH, REPO_ROOT, cleanupAll, deleteManifest, htpasswdLine, httpProbe, makeImage, makeIndex, makeLayer, pushImage, pushIndex, runCommand,
  skopeoCopy, skopeoInspectRaw, startForwarder, startRegcache, startRegistry, stopAllChildren, tmpDir, type Forwarder, type Regcache, type Registry,
} from '../helpers/index.js';

const HOST = 'reg.test';
const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
let upstream: Registry;
let fw: Forwarder;
let rc: Regcache;
const v1 = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 32 * 1024, seed: 'mirror-v1' })] });
const v2 = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 32 * 1024, seed: 'mirror-v2' })] });
const arm = makeImage({ format: 'oci', arch: 'arm64', variant: 'v8', layers: [makeLayer({ randomBytes: 32 * 1024, seed: 'mirror-arm' })] });
const amd = makeImage({ format: 'oci', arch: 'amd64', layers: [makeLayer({ randomBytes: 32 * 1024, seed: 'mirror-amd' })] });
const multi = makeIndex('oci', [amd, arm]);

const cli = (args: string[]): ReturnType<typeof runCommand> =>
  runCommand(process.execPath, [CLI_PATH, 'sync', ...args, '--config', rc.configPath], {
    cwd: REPO_ROOT, timeoutMs: 120_000, env: { ...process.env, REGCACHE_USERNAME: 'ci', REGCACHE_PASSWORD: 'ci-secret' },
  });

async function mirrorTags(): Promise<string[]> {
  const r = await httpProbe(`${rc.url}/v2/mirror/web/tags/list`);
  expect(r.status).toBe(200);
  return (JSON.parse(r.body.toString('utf8')) as { tags: string[] }).tags;
}

beforeAll(async () => {
  upstream = await startRegistry();
  await pushImage(upstream.url, 'apps/web', 'v1', v1);
  await pushImage(upstream.url, 'apps/web', 'v2', v2);
  await pushIndex(upstream.url, 'apps/web', 'multi', multi);
  fw = await startForwarder(upstream);
  const dir = tmpDir('regcache-sync-hosted-');
  const htpasswd = join(dir, 'htpasswd');
  writeFileSync(htpasswd, `${await htpasswdLine('ci', 'ci-secret')}\n`);
  rc = await startRegcache({
    config: {
      upstreams: { [HOST]: { url: fw.url } },
      retention: { interval: 0 },
      hostedRepositories: { 'mirror/**': { sparseIndex: true } },
      auth: { htpasswd, anonymousPull: true, rules: [{ users: ['ci'], repositories: ['mirror/**'], actions: ['push', 'delete'] }] },
      sync: { web: { source: `${HOST}/apps/web`, platforms: 'linux/arm64', target: 'hosted:mirror/web', rollback: true, enabled: false, retries: 0 } },
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

describe('sync job with a hosted target against docker-registry', () => {
  it('mirrors the tags with the upstream digests, serves them with no upstream request, refuses pushes, drops a tag deleted upstream', async () => {
    const first = await cli(['now', 'web', '--wait']);
    // stderr carries the progress lines of --wait (plain, no terminal), nothing else.
    expect(first.stderr.split('\n').filter((l) => l && !l.startsWith('sync: web: '))).toEqual([]);
    expect(first.stdout).toMatch(/^web: SUCCESS \(3 synced, 0 unchanged, 0 failed, \d+ bytes\)\n$/);
    // Only the chosen platform's child of the index was fetched.
    expect(fw.count('GET', new RegExp(amd.layers[0]!.digest))).toBe(0);
    expect(await mirrorTags()).toEqual(['multi', 'v1', 'v2']);

    fw.reset();
    expect(sha(await skopeoInspectRaw(`docker://${rc.host}/mirror/web:v1`))).toBe(v1.digest);
    expect(sha(await skopeoInspectRaw(`docker://${rc.host}/mirror/web:multi`))).toBe(multi.digest);
    const out = tmpDir('regcache-sync-hosted-pull-');
    const pulled = await skopeoCopy(`docker://${rc.host}/mirror/web:multi`, `dir:${out}`, { arch: 'arm64', os: 'linux', extraArgs: ['--override-variant', 'v8'] });
    expect(pulled.stderr).not.toMatch(/error/i);
    expect(pulled.code).toBe(0);
    expect(fw.requests).toEqual([]);

    const push = await skopeoCopy(`docker://${rc.host}/mirror/web:v1`, `docker://${rc.host}/mirror/web:v9`, { destCreds: 'ci:ci-secret' });
    expect(push.code).not.toBe(0);
    expect(push.stderr).toMatch(/mirror kept by sync job web/);
    expect(await mirrorTags()).toEqual(['multi', 'v1', 'v2']);

    expect(await deleteManifest(upstream.url, 'apps/web', v2.digest)).toBe(202);
    const again = await cli(['now', 'web', '--wait']);
    expect(again.stdout).toBe('web: SUCCESS (0 synced, 2 unchanged, 0 failed, 0 bytes)\n');
    expect(await mirrorTags()).toEqual(['multi', 'v1']);
  });
});
