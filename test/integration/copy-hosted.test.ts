/**
 * `regcache copy` into regcache's own hosted repositories (issue 13: "sources and
 * destinations are any OCI registries, including regcache's own hosted repositories"):
 * a regcache process with two hosted patterns (`mirror/**` refuses an index whose children
 * are absent, `sparse/**` sets `sparseIndex: true`) and an htpasswd user with push rights,
 * behind a request-counting forwarder; Debian's docker-registry as the source. Digests
 * are compared with `skopeo inspect --raw` against regcache itself.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLI_PATH, cleanupAll, htpasswdLine, makeImage, makeIndex, makeLayer, pushImage, pushIndex, runCommand, sha256, skopeoInspectRaw,
  startForwarder, startRegcache, startRegistry, stopAllChildren, tmpDir,
  type Forwarder, type Image, type Index, type Regcache, type Registry, type RunResult,
} from '../helpers/index.js';

const SECRET = 'hosted-copy-Pa55-never-printed';
let source: Registry;
let rc: Regcache;
let fwd: Forwarder;
let work: string;
let authFile: string;
let v1: Image;
let v2: Image;
let multi: Index;

const WRITES = /^(POST|PUT|PATCH|DELETE)$/;
const writes = (f: Forwarder): number => f.requests.filter((r) => WRITES.test(r.method)).length;
/**
 * Distinct requests (method and path): anonymous pull lets the HEADs through without
 * credentials, so the first writes sent side by side each meet the 401 challenge and are
 * sent again with them; what matters is which blobs were mounted and that none was uploaded.
 */
const distinct = (method: string, path: RegExp): number => new Set(fwd.requests.filter((r) => r.method === method && path.test(r.path)).map((r) => r.path)).size;

async function copy(args: string[]): Promise<RunResult> {
  const r = await runCommand(process.execPath, [CLI_PATH, 'copy', '--insecure', `${source.host},${fwd.host}`, ...args], {
    cwd: work, timeoutMs: 120_000, env: { ...process.env, REGISTRY_AUTH_FILE: authFile },
  });
  expect(r.stdout + r.stderr).not.toContain(SECRET);
  return r;
}

/** The digest of what regcache serves for `repo:ref` (anonymous pull is on). */
async function rawDigest(repoRef: string): Promise<string> {
  return sha256(await skopeoInspectRaw(`docker://${rc.host}/${repoRef}`));
}

beforeAll(async () => {
  work = tmpDir('regcache-copy-hosted-');
  source = await startRegistry();
  const htpasswd = join(work, 'htpasswd');
  writeFileSync(htpasswd, `${await htpasswdLine('robot', SECRET)}\n`);
  rc = await startRegcache({
    config: {
      hostedRepositories: { 'mirror/**': {}, 'sparse/**': { sparseIndex: true } },
      auth: { htpasswd, anonymousPull: true, rules: [{ users: ['robot'], repositories: ['mirror/**', 'sparse/**'], actions: ['push'] }] },
    },
  });
  fwd = await startForwarder({ host: rc.host, port: 0 });
  authFile = join(work, 'auth.json');
  writeFileSync(authFile, JSON.stringify({ auths: { [fwd.host]: { auth: Buffer.from(`robot:${SECRET}`).toString('base64') } } }));

  const shared = makeLayer({ randomBytes: 1024 * 1024, seed: 'hosted-shared' });
  v1 = makeImage({ format: 'docker', layers: [shared, makeLayer({ 'v1.txt': 'one' })] });
  v2 = makeImage({ format: 'oci', layers: [shared, makeLayer({ 'v2.txt': 'two' })] });
  await pushImage(source.url, 'org/app', 'v1', v1);
  await pushImage(source.url, 'org/app', 'v2', v2);
  const plat = (arch: string, variant?: string): Image => makeImage({
    format: 'oci', arch, ...(variant ? { variant } : {}), layers: [makeLayer({ randomBytes: 256 * 1024, seed: `hosted-multi-${arch}` })],
  });
  multi = makeIndex('oci', [plat('amd64'), plat('arm64', 'v8'), plat('s390x')]);
  await pushIndex(source.url, 'org/multi', '1', multi);
}, 120_000);

afterAll(async () => {
  await fwd?.close();
  await rc?.stop();
  await stopAllChildren();
  await cleanupAll();
});

describe('regcache copy into regcache hosted repositories', () => {
  it('without push credentials: refused, nothing copied, exit 1', async () => {
    const none = join(work, 'no-credentials.json');
    writeFileSync(none, '{"auths":{}}\n');
    const r = await runCommand(process.execPath, [CLI_PATH, 'copy', '--insecure', `${source.host},${fwd.host}`,
      `${source.host}/org/app:v1=${fwd.host}/mirror/anon:v1`], { cwd: work, timeoutMs: 120_000, env: { ...process.env, REGISTRY_AUTH_FILE: none } });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toMatch(/^failed +.*mirror\/anon:v1/m);
    expect((await fetch(`${rc.url}/v2/mirror/anon/manifests/v1`, { method: 'HEAD', headers: { accept: v1.mediaType } })).status).toBe(404);
    for (const l of v1.layers) expect((await fetch(`${rc.url}/v2/mirror/anon/blobs/${l.digest}`, { method: 'HEAD' })).status).toBe(404);
  });

  it('wildcard copy and a multi-platform index with all children, digests preserved', async () => {
    const r = await copy([`${source.host}/org/app:*=${fwd.host}/mirror/app`, `${source.host}/org/multi:1=${fwd.host}/mirror/multi:1`]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/3 copied, 0 unchanged, 0 failed, 0 skipped/);
    expect(await rawDigest('mirror/app:v1')).toBe(v1.digest);
    expect(await rawDigest('mirror/app:v2')).toBe(v2.digest);
    expect(await rawDigest('mirror/multi:1')).toBe(multi.digest);
    for (const img of multi.images) expect(await rawDigest(`mirror/multi@${img.digest}`)).toBe(img.digest);
  });

  it('a rerun sends nothing (zero write requests at regcache)', async () => {
    fwd.reset();
    const r = await copy([`${source.host}/org/app:*=${fwd.host}/mirror/app`, `${source.host}/org/multi:1=${fwd.host}/mirror/multi:1`]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/0 copied, 3 unchanged/);
    expect(fwd.count('HEAD')).toBeGreaterThan(0);
    expect(writes(fwd)).toBe(0);
  });

  it('mounts within regcache: a second repository gets every blob by mount, none uploaded', async () => {
    fwd.reset();
    const r = await copy([`${source.host}/org/app:v2`, `${fwd.host}/mirror/mount-a`, `${fwd.host}/mirror/mount-b`]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    // mirror/app already holds all three blobs, but the run does not know that: it sends
    // them once into one repository and mounts them into the other.
    expect(distinct('POST', /\/blobs\/uploads\/\?mount=/)).toBe(3);
    expect(fwd.count('PUT', /\/blobs\/uploads\//)).toBe(3);
    expect(r.stdout).toMatch(/3 mounted/);
    expect(await rawDigest('mirror/mount-a:v2')).toBe(v2.digest);
    expect(await rawDigest('mirror/mount-b:v2')).toBe(v2.digest);
  });

  it('copying between two hosted repositories of the same regcache mounts from the source repository', async () => {
    fwd.reset();
    const r = await copy([`${fwd.host}/mirror/app:v1`, `${fwd.host}/mirror/same:v1`]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(distinct('POST', /\/mirror\/same\/blobs\/uploads\/\?mount=.*from=mirror%2Fapp/)).toBe(3);
    expect(fwd.count('PUT', /\/blobs\/uploads\//)).toBe(0);
    expect(await rawDigest('mirror/same:v1')).toBe(v1.digest);
  });
});

describe('platform filter with --keep-manifest-list into hosted repositories', () => {
  it('sparseIndex: true: the unchanged index is kept (digest preserved), only the chosen platform sent', async () => {
    const amd = multi.images[0]!;
    fwd.reset();
    const r = await copy(['--platforms', 'linux/amd64', '--keep-manifest-list', `${source.host}/org/multi:1=${fwd.host}/sparse/multi:1`]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(/refused|filtered index/);
    expect(await rawDigest('sparse/multi:1')).toBe(multi.digest);
    expect(await rawDigest(`sparse/multi@${amd.digest}`)).toBe(amd.digest);
    // only amd64's child manifest and blobs went in
    expect(fwd.count('PUT', /\/sparse\/multi\/manifests\/sha256:/)).toBe(1);
    const res = await fetch(`${rc.url}/v2/sparse/multi/manifests/${multi.images[1]!.digest}`, { method: 'HEAD', headers: { accept: multi.images[1]!.mediaType } });
    expect(res.status).toBe(404);
    // a rerun is up to date
    fwd.reset();
    const again = await copy(['--platforms', 'linux/amd64', '--keep-manifest-list', `${source.host}/org/multi:1=${fwd.host}/sparse/multi:1`]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/0 copied, 1 unchanged/);
    expect(writes(fwd)).toBe(0);
  });

  it('without sparseIndex: refused (MANIFEST_BLOB_UNKNOWN); the command says so and writes a filtered index, its new digest printed', async () => {
    const r = await copy(['--platforms', 'linux/amd64,linux/s390x', '--keep-manifest-list', `${source.host}/org/multi:1=${fwd.host}/mirror/keep:1`]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const m = /refused the unchanged index (sha256:[a-f0-9]{64}) without its other platforms \(MANIFEST_BLOB_UNKNOWN\); wrote a filtered index (sha256:[a-f0-9]{64})/.exec(r.stdout);
    expect(m?.[1]).toBe(multi.digest);
    expect(m?.[2]).not.toBe(multi.digest);
    const raw = await skopeoInspectRaw(`docker://${rc.host}/mirror/keep:1`);
    expect(sha256(raw)).toBe(m?.[2]);
    const doc = JSON.parse(raw.toString()) as { manifests: Array<{ digest: string }> };
    expect(doc.manifests.map((x) => x.digest)).toEqual([multi.images[0]!.digest, multi.images[2]!.digest]);
  });
});
