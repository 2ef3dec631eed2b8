/**
 * A real containerd (1.6, our own instance with its own root, state and socket) pulling through regcache with the
 * hosts.toml tree `regcache containerd-config --format hosts.toml` generates: ns mode, ports mode, `--default`
 * (`_default/hosts.toml`), multi-arch with --platform and --all-platforms, and a second pull served from the cache.
 *
 * Proving a pull came through regcache: the generated `server` is the configured upstream URL — here the test
 * registry itself, so containerd's fallback to `server` would also succeed. Every test therefore checks
 * (1) regcache's request log for the manifest and blob requests, and (2) the registry's access log: containerd's own
 * User-Agent (`containerd/1.6...`) must never appear there, only regcache's.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLI_PATH, REPO_ROOT, cleanupAll, freePort, httpProbe, makeImage, makeIndex, makeLayer, pushImage, pushIndex,
  runCommand, startRegcache, startRegistry, stopAllChildren, tmpDir, waitUntil,
  type Image, type Index, type Layer, type LogLine, type Regcache, type Registry,
} from '../helpers/index.js';
import { mountsUnder, startContainerd, type Containerd, type CtrResult } from '../helpers/containerd.js';

let upstream: Registry;
let rc: Regcache;
let ctrd: Containerd;
let quayPort: number;
let single: Image;
let multi: Index;
let quayImage: Image;
let ghcrImage: Image;
let offlineImage: Image;
/** hosts.toml trees: ns mode, ports mode, and --default generated before regcache knew ghcr.io. */
let nsDir: string;
let portsDir: string;
let defaultDir: string;
let portsGenStderr: string;

const timings: Record<string, number> = {};

const cli = (args: string[]): ReturnType<typeof runCommand> => runCommand(process.execPath, [CLI_PATH, ...args], { cwd: REPO_ROOT, timeoutMs: 20_000 });

/** containerd's snapshot key (chain ID) of a layer stack, as computed from the diff IDs. */
function chainIds(layers: Layer[]): string[] {
  const out: string[] = [];
  for (const l of layers) {
    const prev = out.at(-1);
    out.push(prev === undefined ? l.diffId : `sha256:${createHash('sha256').update(`${prev} ${l.diffId}`).digest('hex')}`);
  }
  return out;
}

/** regcache 'request' log lines for one repository, from log index `from` on. */
function requests(repo: string, from = 0): LogLine[] {
  return rc.logs().slice(from).filter((l) => l.msg === 'request' && typeof l.path === 'string' && (l.path as string).startsWith(`/v2/${repo}/`));
}

/** Waits until regcache has logged a GET for each digest of `repo` (pino writes after the response ends). */
async function waitForBlobGets(repo: string, digests: string[], from: number): Promise<LogLine[]> {
  await waitUntil(
    () => digests.every((d) => requests(repo, from).some((l) => l.method === 'GET' && (l.path as string).startsWith(`/v2/${repo}/blobs/${d}`))),
    { timeoutMs: 5_000, message: `regcache did not log GETs of every blob of ${repo}: ${JSON.stringify(requests(repo, from).map((l) => `${l.method} ${l.path} ${l.status}`))}` },
  );
  return requests(repo, from);
}

/** Lines of the registry's access log made by containerd itself (a pull that bypassed regcache), for `repo` or any. */
const containerdHitsOnRegistry = (repo = ''): string[] =>
  upstream.logs().split('\n').filter((l) => /containerd\//.test(l) && l.includes(`/v2/${repo}`));

/**
 * TCP sockets (IPv4, this network namespace) with `port` at either end, except the listening one: after a client
 * has connected to the port and gone, its TIME_WAIT entry (or the server side's, whoever closed first) remains for
 * about a minute. Read from /proc/net/tcp; states in hex (0A = LISTEN).
 */
function socketsOnPort(port: number): Set<string> {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  const out = new Set<string>();
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    const [local, remote, st] = [f[1]!, f[2]!, f[3]!];
    if ((local.endsWith(`:${hex}`) && st !== '0A') || remote.endsWith(`:${hex}`)) out.add(`${local}->${remote}`);
  }
  return out;
}

function expectPulled(r: CtrResult, what: string): void {
  expect(r.code, `${what}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}\ncontainerd:\n${ctrd.logs().slice(-3000)}`).toBe(0);
}

/** Sum of a Prometheus counter's samples whose labels include all of `labels`. */
async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const r = await httpProbe(`${rc.url}/metrics`);
  let sum = 0;
  for (const line of r.body.toString().split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.split(' ').at(-1));
  }
  return sum;
}

beforeAll(async () => {
  const t0 = Date.now();
  [upstream, ctrd] = await Promise.all([startRegistry(), startContainerd()]);
  timings.startContainerdAndRegistry = Date.now() - t0;
  single = makeImage({
    format: 'oci',
    layers: [makeLayer({ 'etc/os-release': 'ID=regcache-test\n' }), makeLayer({ 'app/hello.txt': 'hello from the single-arch image\n' })],
  });
  const amd = makeImage({ format: 'oci', arch: 'amd64', layers: [makeLayer({ 'arch.txt': 'amd64\n' })] });
  const arm = makeImage({ format: 'oci', arch: 'arm64', layers: [makeLayer({ 'arch.txt': 'arm64\n' })] });
  multi = makeIndex('oci', [amd, arm]);
  quayImage = makeImage({ format: 'docker', layers: [makeLayer({ 'quay.txt': 'served on the quay.io port\n' })] });
  ghcrImage = makeImage({ format: 'oci', layers: [makeLayer({ 'ghcr.txt': 'routed through _default\n' })] });
  offlineImage = makeImage({ format: 'oci', layers: [makeLayer({ 'offline.txt': 'pulled once, then the upstream goes away\n' })] });
  await pushImage(upstream.url, 'team/app', 'v1', single);
  await pushIndex(upstream.url, 'team/multi', 'v1', multi);
  await pushImage(upstream.url, 'org/quayapp', 'v1', quayImage);
  await pushImage(upstream.url, 'org/ghcrapp', 'v1', ghcrImage);
  await pushImage(upstream.url, 'team/offline', 'v1', offlineImage);

  quayPort = await freePort();
  rc = await startRegcache({
    config: {
      upstreams: {
        'docker.io': { url: upstream.url },
        'quay.io': { url: upstream.url, port: quayPort },
        'ghcr.io': { url: upstream.url },
        'registry.example:5000': { url: upstream.url },
      },
    },
  });
  const endpoint = `http://127.0.0.1:${rc.port}`;
  const base = tmpDir('regcache-hosts-');
  nsDir = join(base, 'ns');
  portsDir = join(base, 'ports');
  defaultDir = join(base, 'default');
  const gen = async (out: string, extra: string[], config = rc.configPath): Promise<string> => {
    const r = await cli(['containerd-config', '--config', config, '--format', 'hosts.toml', '--endpoint', endpoint, '--out', out, ...extra]);
    expect(r.code, r.stderr).toBe(0);
    return r.stderr;
  };
  await gen(nsDir, []);
  portsGenStderr = await gen(portsDir, ['--mode', 'ports']);
  // The node configuration for --default was generated before regcache learned ghcr.io: ghcr.io has no directory.
  const older = { ...rc.config, upstreams: { ...(rc.config.upstreams as Record<string, unknown>) } };
  delete (older.upstreams as Record<string, unknown>)['ghcr.io'];
  const olderPath = join(base, 'older-regcache.yaml');
  writeFileSync(olderPath, stringify(older));
  await gen(defaultDir, ['--default'], olderPath);
  timings.beforeAll = Date.now() - t0;
});

afterAll(async () => {
  const t0 = Date.now();
  // Everything is stopped even if one step fails (containerd first: it unmounts and removes its directory).
  let firstError: unknown;
  for (const step of [() => ctrd?.stop(), () => rc?.stop(), () => upstream?.stop(), () => stopAllChildren(), () => cleanupAll()]) {
    try {
      await step();
    } catch (e) {
      firstError ??= e;
    }
  }
  timings.afterAll = Date.now() - t0;
  // eslint-disable-next-line no-console
  console.log(`containerd.test timings (ms): ${JSON.stringify(timings)}`);
  if (firstError !== undefined) throw firstError;
});

describe('generated hosts.toml trees', () => {
  it('ns mode: one directory per upstream, each pointing at the main endpoint', () => {
    const docker = readFileSync(join(nsDir, 'docker.io', 'hosts.toml'), 'utf8');
    expect(docker).toContain(`[host."http://127.0.0.1:${rc.port}"]`);
    expect(docker).toContain('capabilities = ["pull", "resolve"]');
    // server is the configured upstream URL (the test registry here, https://registry-1.docker.io in production).
    expect(docker).toContain(`server = "${upstream.url}"`);
    expect(readFileSync(join(nsDir, 'quay.io', 'hosts.toml'), 'utf8')).toContain(`[host."http://127.0.0.1:${rc.port}"]`);
  });

  it('ports mode: quay.io points at its own port, docker.io (no port) falls back to the main endpoint with a warning', () => {
    expect(readFileSync(join(portsDir, 'quay.io', 'hosts.toml'), 'utf8')).toContain(`[host."http://127.0.0.1:${quayPort}"]`);
    expect(readFileSync(join(portsDir, 'quay.io', 'hosts.toml'), 'utf8')).not.toContain(`:${rc.port}"`);
    expect(readFileSync(join(portsDir, 'docker.io', 'hosts.toml'), 'utf8')).toContain(`[host."http://127.0.0.1:${rc.port}"]`);
    expect(portsGenStderr).toMatch(/no port .* for docker\.io, ghcr\.io/);
  });

  it('--default: _default/hosts.toml has only the [host] block (no server)', () => {
    const def = readFileSync(join(defaultDir, '_default', 'hosts.toml'), 'utf8');
    expect(def).toContain(`[host."http://127.0.0.1:${rc.port}"]`);
    expect(def).not.toMatch(/^server/m);
    expect(() => readFileSync(join(defaultDir, 'ghcr.io', 'hosts.toml'))).toThrow();
  });
});

describe('ctr images pull --hosts-dir through regcache', () => {
  it('ns mode: docker.io single-arch image pulls, unpacks, and records the upstream digest', async () => {
    const mark = rc.logs().length;
    const t0 = Date.now();
    const r = await ctrd.pull('docker.io/team/app:v1', { hostsDir: nsDir });
    timings.pullSingle = Date.now() - t0;
    expectPulled(r, 'pull docker.io/team/app:v1');

    const [img] = (await ctrd.imageList()).filter((i) => i.ref === 'docker.io/team/app:v1');
    expect(img?.digest).toBe(single.digest);
    expect(img?.type).toBe(single.mediaType);
    const [check] = (await ctrd.check()).filter((i) => i.ref === 'docker.io/team/app:v1');
    // config + layers (the manifest itself is not counted)
    expect(check).toMatchObject({ status: 'complete', have: 1 + single.layers.length, need: 1 + single.layers.length, unpacked: true });
    const snaps = await ctrd.snapshots();
    for (const id of chainIds(single.layers)) expect(snaps.some((s) => s.key === id && s.kind === 'Committed'), `snapshot ${id}`).toBe(true);

    // regcache saw the resolve (HEAD by tag), the manifest, config and layers, all with ?ns=docker.io.
    const blobs = [single.config.digest, ...single.layers.map((l) => l.digest)];
    const lines = await waitForBlobGets('team/app', blobs, mark);
    expect(lines.some((l) => l.method === 'HEAD' && l.path === '/v2/team/app/manifests/v1?ns=docker.io' && l.status === 200)).toBe(true);
    for (const l of lines) {
      expect(l.path).toMatch(/\?ns=docker\.io$/);
      expect(l.upstream).toBe('docker.io');
      expect(l.status).toBe(200);
    }
    expect(lines.filter((l) => l.kind === 'blob' && l.method === 'GET').map((l) => l.cache)).toEqual(blobs.map(() => 'miss'));
    expect(containerdHitsOnRegistry()).toEqual([]);
  });

  it('multi-arch OCI index with --platform linux/arm64: only the arm64 image is fetched and unpacked', async () => {
    const [amd, arm] = multi.images as [Image, Image];
    const mark = rc.logs().length;
    const r = await ctrd.pull('docker.io/team/multi:v1', { hostsDir: nsDir, platform: 'linux/arm64', namespace: 'arm' });
    expectPulled(r, 'pull --platform linux/arm64');
    expect(r.stdout).toContain(`unpacking linux/arm64 ${multi.digest}`);
    const [img] = await ctrd.imageList('arm');
    expect(img).toMatchObject({ ref: 'docker.io/team/multi:v1', digest: multi.digest, type: multi.mediaType });
    const content = await ctrd.contentDigests('arm');
    expect(content).toEqual(expect.arrayContaining([multi.digest, arm.digest, arm.config.digest, arm.layers[0]!.digest]));
    expect(content).not.toContain(amd.layers[0]!.digest);
    expect(content).not.toContain(amd.config.digest);
    const snaps = (await ctrd.snapshots('arm')).map((s) => s.key);
    expect(snaps).toContain(arm.layers[0]!.diffId);
    expect(snaps).not.toContain(amd.layers[0]!.diffId);
    const lines = await waitForBlobGets('team/multi', [arm.config.digest, arm.layers[0]!.digest], mark);
    expect(lines.some((l) => (l.path as string).startsWith(`/v2/team/multi/manifests/${arm.digest}?ns=docker.io`))).toBe(true);
    expect(lines.some((l) => (l.path as string).includes(amd.layers[0]!.digest))).toBe(false);
    expect(containerdHitsOnRegistry()).toEqual([]);
  });

  it('multi-arch OCI index with --all-platforms: both images fetched and unpacked', async () => {
    const [amd, arm] = multi.images as [Image, Image];
    const mark = rc.logs().length;
    const r = await ctrd.pull('docker.io/team/multi:v1', { hostsDir: nsDir, allPlatforms: true, namespace: 'all' });
    expectPulled(r, 'pull --all-platforms');
    expect(r.stdout).toContain(`unpacking linux/amd64 ${multi.digest}`);
    expect(r.stdout).toContain(`unpacking linux/arm64 ${multi.digest}`);
    const [img] = await ctrd.imageList('all');
    expect(img?.digest).toBe(multi.digest);
    const content = await ctrd.contentDigests('all');
    for (const i of [amd, arm]) expect(content).toEqual(expect.arrayContaining([i.digest, i.config.digest, i.layers[0]!.digest]));
    const snaps = (await ctrd.snapshots('all')).map((s) => s.key);
    expect(snaps).toEqual(expect.arrayContaining([amd.layers[0]!.diffId, arm.layers[0]!.diffId]));
    // The arm64 blobs are cached by the previous test; amd64's are new. Either way they came through regcache.
    const lines = await waitForBlobGets('team/multi', [amd.config.digest, amd.layers[0]!.digest, arm.layers[0]!.digest], mark);
    const cacheOf = (d: string): unknown => lines.find((l) => l.method === 'GET' && (l.path as string).includes(`/blobs/${d}`))?.cache;
    expect(cacheOf(amd.layers[0]!.digest)).toBe('miss');
    expect(cacheOf(arm.layers[0]!.digest)).toBe('hit');
    expect(containerdHitsOnRegistry()).toEqual([]);
  });

  it('ports mode: quay.io/org/quayapp:v1 is pulled through the quay.io port', async () => {
    const before = await metric('regcache_requests_total', { upstream: 'quay.io', kind: 'blob' });
    const socketsBefore = socketsOnPort(quayPort);
    const mark = rc.logs().length;
    const r = await ctrd.pull('quay.io/org/quayapp:v1', { hostsDir: portsDir, namespace: 'ports' });
    expectPulled(r, 'pull quay.io in ports mode');
    const [img] = await ctrd.imageList('ports');
    expect(img).toMatchObject({ ref: 'quay.io/org/quayapp:v1', digest: quayImage.digest });
    expect((await ctrd.check('ports'))[0]).toMatchObject({ status: 'complete', unpacked: true });
    const lines = await waitForBlobGets('org/quayapp', [quayImage.config.digest, quayImage.layers[0]!.digest], mark);
    for (const l of lines) expect(l.upstream).toBe('quay.io');
    expect(await metric('regcache_requests_total', { upstream: 'quay.io', kind: 'blob' })).toBeGreaterThanOrEqual(before + 2);
    // regcache's request log has no listener/port field. The only [host] in portsDir/quay.io/hosts.toml is the
    // quay.io port (checked above) and the registry never saw containerd, so these requests arrived on that port.
    // containerd still adds ?ns=quay.io there (the image's registry differs from the endpoint host), which the
    // per-host listener accepts because it equals its own upstream.
    expect(lines.every((l) => /\?ns=quay\.io$/.test(l.path as string))).toBe(true);
    expect(containerdHitsOnRegistry()).toEqual([]);
    // Direct evidence: ctr connected to the quay.io port (nothing else in this test has touched it yet).
    expect([...socketsOnPort(quayPort)].filter((k) => !socketsBefore.has(k)).length).toBeGreaterThan(0);
    // The port itself serves quay.io only: ns naming another registry is refused there.
    const other = await httpProbe(`http://127.0.0.1:${quayPort}/v2/org/quayapp/manifests/v1?ns=docker.io`);
    expect(other.status).toBe(404);
    expect(JSON.parse(other.body.toString()).errors[0].code).toBe('NAME_UNKNOWN');
  });

  it('--default: ghcr.io (no directory of its own) pulls via _default/hosts.toml, routed by ns', async () => {
    const mark = rc.logs().length;
    const r = await ctrd.pull('ghcr.io/org/ghcrapp:v1', { hostsDir: defaultDir, namespace: 'default' });
    expectPulled(r, 'pull ghcr.io via _default');
    const [img] = await ctrd.imageList('default');
    expect(img).toMatchObject({ ref: 'ghcr.io/org/ghcrapp:v1', digest: ghcrImage.digest });
    expect((await ctrd.check('default'))[0]).toMatchObject({ status: 'complete', unpacked: true });
    const lines = await waitForBlobGets('org/ghcrapp', [ghcrImage.config.digest, ghcrImage.layers[0]!.digest], mark);
    for (const l of lines) {
      expect(l.path).toMatch(/\?ns=ghcr\.io$/);
      expect(l.upstream).toBe('ghcr.io');
    }
    // No `server` in _default: containerd's fallback would be https://ghcr.io, which does not resolve here.
    expect(containerdHitsOnRegistry()).toEqual([]);
  });

  it('a registry host with a port (registry.example:5000) finds its directory and is routed by ns', async () => {
    expect(readFileSync(join(nsDir, 'registry.example:5000', 'hosts.toml'), 'utf8')).toContain(`[host."http://127.0.0.1:${rc.port}"]`);
    const mark = rc.logs().length;
    const r = await ctrd.pull('registry.example:5000/org/ghcrapp:v1', { hostsDir: nsDir, namespace: 'hostport' });
    expectPulled(r, 'pull registry.example:5000/org/ghcrapp:v1');
    expect((await ctrd.imageList('hostport'))[0]).toMatchObject({ ref: 'registry.example:5000/org/ghcrapp:v1', digest: ghcrImage.digest });
    const lines = await waitForBlobGets('org/ghcrapp', [ghcrImage.layers[0]!.digest], mark);
    for (const l of lines) {
      // containerd percent-encodes the ':' in the query value; regcache decodes it.
      expect(l.path).toMatch(/\?ns=registry\.example%3A5000$/);
      expect(l.upstream).toBe('registry.example:5000');
    }
  });

  it('a second pull after images rm + content rm is served from regcache\'s cache', async () => {
    await ctrd.forgetEverything('test');
    expect(await ctrd.images('test')).toEqual([]);
    const hitsBefore = await metric('regcache_cache_results_total', { upstream: 'docker.io', kind: 'blob', result: 'hit' });
    const registryBlobGets = (): number => upstream.logs().split('\n').filter((l) => /"GET \/v2\/team\/app\/blobs\//.test(l)).length;
    const upstreamGetsBefore = registryBlobGets();
    const mark = rc.logs().length;
    const t0 = Date.now();
    const r = await ctrd.pull('docker.io/team/app:v1', { hostsDir: nsDir });
    timings.pullSingleCached = Date.now() - t0;
    expectPulled(r, 'second pull');
    expect((await ctrd.check('test')).find((i) => i.ref === 'docker.io/team/app:v1')).toMatchObject({ digest: single.digest, status: 'complete', unpacked: true });
    const blobs = [single.config.digest, ...single.layers.map((l) => l.digest)];
    const lines = await waitForBlobGets('team/app', blobs, mark);
    const blobGets = lines.filter((l) => l.kind === 'blob' && l.method === 'GET');
    expect(blobGets.map((l) => l.cache)).toEqual(blobs.map(() => 'hit'));
    // The manifest by digest comes from the cache too. (The tag HEAD does not, yet: see the BUG test below.)
    const byDigest = lines.filter((l) => l.kind === 'manifest' && l.method === 'GET');
    expect(byDigest.map((l) => [l.path, l.cache])).toEqual([[`/v2/team/app/manifests/${single.digest}?ns=docker.io`, 'hit']]);
    expect(await metric('regcache_cache_results_total', { upstream: 'docker.io', kind: 'blob', result: 'hit' })).toBeGreaterThanOrEqual(hitsBefore + blobs.length);
    expect(registryBlobGets()).toBe(upstreamGetsBefore);
    expect(containerdHitsOnRegistry()).toEqual([]);
  });
});

describe('upstream down after one containerd pull', () => {
  // BUG (src/registry/proxy/manifest-cache.ts, fetchOnce, HEAD branch): containerd resolves a tag with HEAD and then GETs the
  // manifest by digest. On the first pull the HEAD is a miss for a manifest regcache does not have yet, and the tag
  // is only recorded `if (known)`; the GET by digest stores the manifest but no tag. So after a complete containerd
  // pull regcache still has no tag -> digest mapping: the next HEAD by tag goes upstream again (logged cache=miss),
  // and with the upstream down the pull fails although manifest and blobs are all cached. (skopeo GETs the tag, so
  // pull.test.ts's "upstream gone" test does not see this.) Fails until the HEAD records the tag even when the
  // manifest is not cached yet (byTag already falls back to a fetch when the row is missing).
  it('the tag is cached by the first pull: the second pull by tag works with the upstream stopped', async () => {
    const first = await ctrd.pull('docker.io/team/offline:v1', { hostsDir: nsDir, namespace: 'offline1' });
    expectPulled(first, 'first pull of team/offline:v1');
    await waitForBlobGets('team/offline', [offlineImage.layers[0]!.digest], 0);
    await upstream.stop();
    try {
      const mark = rc.logs().length;
      // A fresh namespace (content is isolated per namespace): every blob and manifest is asked for again.
      const second = await ctrd.pull('docker.io/team/offline:v1', { hostsDir: nsDir, namespace: 'offline2' });
      await waitUntil(() => requests('team/offline', mark).length > 0, { timeoutMs: 5_000 });
      const head = requests('team/offline', mark).find((l) => l.method === 'HEAD' && l.kind === 'manifest');
      expect(head, 'regcache should answer containerd\'s HEAD by tag from its cache').toMatchObject({ status: 200, cache: 'hit' });
      expectPulled(second, 'second pull of team/offline:v1 with the upstream stopped');
      expect((await ctrd.imageList('offline2'))[0]?.digest).toBe(offlineImage.digest);
    } finally {
      await upstream.restart();
    }
  });
});

describe('control', () => {
  it('a pull that bypasses regcache is visible in the registry log (the check above can fail)', async () => {
    const img = makeImage({ format: 'oci', layers: [makeLayer({ 'direct.txt': 'direct\n' })] });
    await pushImage(upstream.url, 'control/direct', 'v1', img);
    const direct = tmpDir('regcache-hosts-direct-');
    mkdirSync(join(direct, 'direct.example'));
    // (containerd 1.6 rejects a hosts.toml with only `server`: "invalid `host` tree".)
    writeFileSync(join(direct, 'direct.example', 'hosts.toml'), `[host."${upstream.url}"]\n  capabilities = ["pull", "resolve"]\n`);
    const mark = rc.logs().length;
    const r = await ctrd.pull('direct.example/control/direct:v1', { hostsDir: direct, namespace: 'control' });
    expectPulled(r, 'direct pull');
    expect(containerdHitsOnRegistry('control/direct').length).toBeGreaterThan(0);
    expect(requests('control/direct', mark)).toEqual([]);
  });
});

describe('containerd helper', () => {
  it('nothing is mounted under containerd\'s directory between pulls', () => {
    expect(mountsUnder(ctrd.dir)).toEqual([]);
    expect(ctrd.running).toBe(true);
  });
});

