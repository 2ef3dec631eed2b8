/**
 * Hosted repositories with real clients: skopeo pushes (single-arch, multi-arch --all) with
 * credentials, `podman push` (vfs storage), `ctr push`, and a real containerd pulling the same images back through the
 * hosts.toml `regcache containerd-config` generates for regcache's own registry name, by tag
 * and by digest, with the same digests. The overlay story: an image pushed as
 * docker.io/myorg/app:sha-1 is pulled by containerd with zero requests at the upstream
 * (counted at a forwarder in front of it); docker.io/myorg/app:1.0, never pushed, comes
 * from the upstream.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLI_PATH, REPO_ROOT, cleanupAll, htpasswdLine, makeImage, makeIndex, makeLayer, pushImage, pushIndex, runCommand,
  skopeoCopy, skopeoInspectRaw, startForwarder, startRegcache, startRegistry, stopAllChildren, tmpDir,
  type Forwarder, type Image, type Index, type Regcache, type Registry,
} from '../helpers/index.js';
import { startContainerd, type Containerd, type CtrResult } from '../helpers/containerd.js';

const OWN = 'regcache.test:5000';
const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

let upstream: Registry;
let fwd: Forwarder;
let rc: Regcache;
let ctrd: Containerd;
let hostsDir: string;
let single: Image;
let multi: Index;
let overlayImage: Image;
let upstreamImage: Image;

const ok = (r: { code: number | null; stdout: string; stderr: string }, what: string): void => {
  expect(r.code, `${what}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`).toBe(0);
};

beforeAll(async () => {
  [upstream, ctrd] = await Promise.all([startRegistry(), startContainerd()]);
  fwd = await startForwarder(upstream);
  const dir = tmpDir('regcache-hosted-');
  const htpasswd = join(dir, 'htpasswd');
  writeFileSync(htpasswd, `${await htpasswdLine('ci', 'ci-secret')}\n`);
  rc = await startRegcache({
    config: {
      upstreams: { 'docker.io': { url: fwd.url } },
      hosted: { names: [OWN] },
      hostedRepositories: { 'team/**': {}, 'docker.io/myorg/**': {} },
      auth: { htpasswd, anonymousPull: true, rules: [{ users: ['ci'], repositories: ['team/**', 'docker.io/myorg/**'], actions: ['push'] }] },
    },
  });
  hostsDir = join(dir, 'certs.d');
  const gen = await runCommand(process.execPath, [CLI_PATH, 'containerd-config', '--config', rc.configPath, '--format', 'hosts.toml', '--endpoint', rc.url, '--out', hostsDir], { cwd: REPO_ROOT, timeoutMs: 20_000 });
  ok(gen, 'containerd-config');
  single = makeImage({ format: 'oci', layers: [makeLayer({ 'etc/os-release': 'ID=hosted\n' }), makeLayer({ 'app/hello.txt': 'pushed into regcache\n' })] });
  multi = makeIndex('oci', [
    makeImage({ format: 'oci', arch: 'amd64', layers: [makeLayer({ 'arch.txt': 'amd64 hosted\n' })] }),
    makeImage({ format: 'oci', arch: 'arm64', layers: [makeLayer({ 'arch.txt': 'arm64 hosted\n' })] }),
  ]);
  overlayImage = makeImage({ format: 'docker', layers: [makeLayer({ 'built.txt': 'built in CI, pushed as docker.io/myorg/app:sha-1\n' })] });
  upstreamImage = makeImage({ format: 'docker', layers: [makeLayer({ 'release.txt': 'the upstream 1.0\n' })] });
  // Sources for skopeo, and the upstream's own myorg/app:1.0.
  await pushImage(upstream.url, 'src/single', 'v1', single);
  await pushIndex(upstream.url, 'src/multi', 'v1', multi);
  await pushImage(upstream.url, 'src/overlay', 'sha-1', overlayImage);
  await pushImage(upstream.url, 'myorg/app', '1.0', upstreamImage);
}, 120_000);

afterAll(async () => {
  await rc?.stop();
  await ctrd?.stop();
  await fwd?.close();
  await upstream?.stop();
  await stopAllChildren();
  await cleanupAll();
});

const pull = (ref: string, opts: { allPlatforms?: boolean } = {}): Promise<CtrResult> => ctrd.pull(ref, { hostsDir, ...opts, timeoutMs: 120_000 });

async function resolvedDigest(ref: string): Promise<string | undefined> {
  return (await ctrd.imageList()).find((i) => i.ref === ref)?.digest;
}

describe('pushing with real clients, pulling back through containerd', () => {
  it('skopeo copy pushes a single-arch image with credentials; containerd pulls it by tag and by digest, same digests', async () => {
    const anon = await skopeoCopy(`docker://${upstream.host}/src/single:v1`, `docker://${rc.host}/team/app:v1`);
    expect(anon.code).not.toBe(0);
    ok(await skopeoCopy(`docker://${upstream.host}/src/single:v1`, `docker://${rc.host}/team/app:v1`, { destCreds: 'ci:ci-secret', preserveDigests: true }), 'skopeo push');
    const digest = sha(await skopeoInspectRaw(`docker://${rc.host}/team/app:v1`));
    expect(digest).toBe(single.digest);
    ok(await pull(`${OWN}/team/app:v1`), 'ctr pull by tag');
    expect(await resolvedDigest(`${OWN}/team/app:v1`)).toBe(single.digest);
    ok(await pull(`${OWN}/team/app@${single.digest}`), 'ctr pull by digest');
    const check = (await ctrd.check()).find((i) => i.ref === `${OWN}/team/app:v1`);
    expect(check?.status).toBe('complete');
    expect(fwd.count('*', /\/v2\/team\//)).toBe(0);
  });

  it('skopeo copy --all pushes a multi-arch index; containerd pulls every platform with the same digests', async () => {
    ok(await skopeoCopy(`docker://${upstream.host}/src/multi:v1`, `docker://${rc.host}/team/multi:v1`, { all: true, destCreds: 'ci:ci-secret', preserveDigests: true }), 'skopeo push --all');
    expect(sha(await skopeoInspectRaw(`docker://${rc.host}/team/multi:v1`))).toBe(multi.digest);
    ok(await pull(`${OWN}/team/multi:v1`, { allPlatforms: true }), 'ctr pull --all-platforms');
    expect(await resolvedDigest(`${OWN}/team/multi:v1`)).toBe(multi.digest);
  });

  it('ctr push of a pulled image to another hosted repository (push capability in the generated hosts.toml)', async () => {
    ok(await ctrd.ctr(['images', 'tag', `${OWN}/team/app:v1`, `${OWN}/team/pushed-by-ctr:v1`]), 'ctr tag');
    const r = await ctrd.ctr(['images', 'push', '--hosts-dir', hostsDir, '--user', 'ci:ci-secret', `${OWN}/team/pushed-by-ctr:v1`], { timeoutMs: 120_000 });
    ok(r, 'ctr push');
    expect(sha(await skopeoInspectRaw(`docker://${rc.host}/team/pushed-by-ctr:v1`))).toBe(single.digest);
  });
});

describe('podman', () => {
  it('podman push (vfs storage) with credentials; containerd pulls the digest podman reports', async () => {
    const root = tmpDir('regcache-podman-');
    const podman = (args: string[]): ReturnType<typeof runCommand> => runCommand('podman', [
      '--root', join(root, 'root'), '--runroot', join(root, 'run'), '--storage-driver', 'vfs', '--tmpdir', join(root, 'tmp'), ...args,
    ], { timeoutMs: 120_000, env: { ...process.env, TMPDIR: root, REGISTRY_AUTH_FILE: join(root, 'auth.json'), CONTAINERS_REGISTRIES_CONF: join(root, 'registries.conf') } });
    writeFileSync(join(root, 'auth.json'), '{"auths":{}}\n');
    writeFileSync(join(root, 'registries.conf'), 'unqualified-search-registries = []\n');
    ok(await podman(['pull', '--tls-verify=false', `docker://${upstream.host}/src/single:v1`]), 'podman pull');
    const digestFile = join(root, 'digest');
    ok(await podman(['push', '--tls-verify=false', '--creds', 'ci:ci-secret', '--digestfile', digestFile, `${upstream.host}/src/single:v1`, `docker://${rc.host}/team/podman:v1`]), 'podman push');
    const pushed = readFileSync(digestFile, 'utf8').trim();
    expect(pushed).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(sha(await skopeoInspectRaw(`docker://${rc.host}/team/podman:v1`))).toBe(pushed);
    ok(await pull(`${OWN}/team/podman:v1`), 'ctr pull of the podman push');
    expect(await resolvedDigest(`${OWN}/team/podman:v1`)).toBe(pushed);
  });
});

describe('overlay: skip mirroring for a pushed upstream name', () => {
  it('docker.io/myorg/app:sha-1 pushed into regcache is pulled with zero upstream requests; :1.0 comes from the upstream', async () => {
    ok(await skopeoCopy(`docker://${upstream.host}/src/overlay:sha-1`, `docker://${rc.host}/docker.io/myorg/app:sha-1`, { destCreds: 'ci:ci-secret', preserveDigests: true }), 'skopeo push overlay');
    fwd.reset();
    ok(await pull('docker.io/myorg/app:sha-1'), 'ctr pull pushed tag');
    expect(await resolvedDigest('docker.io/myorg/app:sha-1')).toBe(overlayImage.digest);
    expect(fwd.requests).toEqual([]);
    ok(await pull('docker.io/myorg/app:1.0'), 'ctr pull upstream tag');
    expect(await resolvedDigest('docker.io/myorg/app:1.0')).toBe(upstreamImage.digest);
    expect(fwd.count('GET', /\/v2\/myorg\/app\/manifests\//) + fwd.count('HEAD', /\/v2\/myorg\/app\/manifests\//)).toBeGreaterThan(0);
  });
});
