/**
 * `regcache copy` end to end, as a process, against real registries: Debian's
 * docker-registry as source, and as destinations one with htpasswd (Basic, behind a
 * request-counting forwarder) and one with token auth (Bearer, via a token issuer);
 * credentials from a docker-style auth file ($REGISTRY_AUTH_FILE). Digests are compared
 * with `skopeo inspect --raw`.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLI_PATH, cleanupAll, makeImage, makeIndex, makeLayer, pushImage, pushIndex, runCommand, sha256, skopeoInspectRaw,
  startForwarder, startRegistry, startTokenIssuer, stopAllChildren, tmpDir,
  type Forwarder, type Image, type Index, type Registry, type RunResult, type TokenIssuer,
} from '../helpers/index.js';

const SECRET = 'copy-Pa55-never-printed';
let source: Registry;
let basic: Registry;
let basicFwd: Forwarder;
let issuer: TokenIssuer;
let tokenReg: Registry;
let work: string;
let authFile: string;
let v1: Image;
let v2: Image;
let multi: Index;

const WRITES = /^(POST|PUT|PATCH|DELETE)$/;
function writes(f: Forwarder): number {
  return f.requests.filter((r) => WRITES.test(r.method)).length;
}

async function copy(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  const r = await runCommand(process.execPath, [CLI_PATH, 'copy', ...args], {
    cwd: work, timeoutMs: 120_000,
    env: { ...process.env, REGISTRY_AUTH_FILE: authFile, ...env },
  });
  expect(r.stdout + r.stderr).not.toContain(SECRET);
  return r;
}

async function rawDigest(ref: string, creds?: string): Promise<string> {
  return sha256(await skopeoInspectRaw(`docker://${ref}`, creds ? { creds } : {}));
}

beforeAll(async () => {
  work = tmpDir('regcache-copy-');
  source = await startRegistry();
  basic = await startRegistry({ auth: 'htpasswd', htpasswd: { user: 'robot', password: SECRET } });
  basicFwd = await startForwarder(basic);
  issuer = await startTokenIssuer({ service: 'copy-test', users: { robot: SECRET }, anonymous: 'deny' });
  tokenReg = await startRegistry({ auth: 'token', tokenIssuer: issuer });
  authFile = join(work, 'auth.json');
  const auth = Buffer.from(`robot:${SECRET}`).toString('base64');
  writeFileSync(authFile, JSON.stringify({ auths: { [basicFwd.host]: { auth }, [`http://${tokenReg.host}`]: { auth } } }));

  const shared = makeLayer({ randomBytes: 1024 * 1024, seed: 'shared' });
  v1 = makeImage({ format: 'docker', layers: [shared, makeLayer({ 'v1.txt': 'one' })] });
  v2 = makeImage({ format: 'docker', layers: [shared, makeLayer({ 'v2.txt': 'two' })] });
  await pushImage(source.url, 'org/app', 'v1', v1);
  await pushImage(source.url, 'org/app', 'v2', v2);
  const plat = (arch: string, variant?: string): Image => makeImage({
    format: 'oci', arch, ...(variant ? { variant } : {}), layers: [makeLayer({ randomBytes: 256 * 1024, seed: `multi-${arch}` })],
  });
  multi = makeIndex('oci', [plat('amd64'), plat('arm64', 'v8'), plat('s390x')]);
  await pushIndex(source.url, 'org/multi', '1', multi);
});

afterAll(async () => {
  await basicFwd?.close();
  await issuer?.close();
  await stopAllChildren();
  await cleanupAll();
});

describe('regcache copy', () => {
  it('dry run prints the plan and sends no write request', async () => {
    basicFwd.reset();
    const r = await copy(['--dry-run', '--insecure', `${source.host},${basicFwd.host}`,
      `${source.host}/org/app:*`, `${basicFwd.host}/mirror/app`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`would copy ${source.host}/org/app:v1 -> ${basicFwd.host}/mirror/app:v1 ${v1.digest}`);
    expect(r.stdout).toContain(`${source.host}/org/app:v2 -> ${basicFwd.host}/mirror/app:v2 ${v2.digest}`);
    expect(r.stdout).toMatch(/blobs: 3 to send .*0 already there/);
    expect(r.stdout).toMatch(/2 to copy, 0 unchanged, 0 failed/);
    expect(basicFwd.count('HEAD')).toBeGreaterThan(0);
    expect(writes(basicFwd)).toBe(0);
  });

  it('copies every tag and a multi-platform index with all children, digests equal (Basic auth, mapping file)', async () => {
    const map = join(work, 'mapping.txt');
    writeFileSync(map, [
      '# OpenShift-style mapping',
      `${source.host}/org/app:* ${basicFwd.host}/mirror/app`,
      '',
      `${source.host}/org/multi:1=${basicFwd.host}/mirror/multi:1`,
    ].join('\n'));
    const r = await copy(['-f', map, '--insecure', source.host, '--insecure', basicFwd.host]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const creds = `robot:${SECRET}`;
    expect(await rawDigest(`${basic.host}/mirror/app:v1`, creds)).toBe(v1.digest);
    expect(await rawDigest(`${basic.host}/mirror/app:v2`, creds)).toBe(v2.digest);
    expect(await rawDigest(`${basic.host}/mirror/multi:1`, creds)).toBe(multi.digest);
    for (const img of multi.images) expect(await rawDigest(`${basic.host}/mirror/multi@${img.digest}`, creds)).toBe(img.digest);
    expect(r.stdout).toMatch(/3 copied, 0 unchanged, 0 failed, 0 skipped/);
  });

  it('a rerun sends nothing', async () => {
    basicFwd.reset();
    const r = await copy(['--insecure', `${source.host},${basicFwd.host}`,
      `${source.host}/org/app:*=${basicFwd.host}/mirror/app`, `${source.host}/org/multi:1=${basicFwd.host}/mirror/multi:1`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/0 copied, 3 unchanged/);
    expect(writes(basicFwd)).toBe(0);
  });

  it('mounts a blob already sent to another repository of the same registry instead of sending it again', async () => {
    basicFwd.reset();
    const r = await copy(['--insecure', `${source.host},${basicFwd.host}`,
      `${source.host}/org/app:v2`, `${basicFwd.host}/mount/a`, `${basicFwd.host}/mount/b`]);
    expect(r.code, r.stderr).toBe(0);
    // 3 blobs (config, shared layer, own layer): sent once each, mounted once each into the other repository.
    expect(basicFwd.count('POST', /\/blobs\/uploads\/\?mount=/)).toBe(3);
    expect(basicFwd.count('PUT', /\/blobs\/uploads\//)).toBe(3);
    expect(await rawDigest(`${basic.host}/mount/b:v2`, `robot:${SECRET}`)).toBe(v2.digest);
    expect(r.stdout).toMatch(/3 mounted/);
  });

  it('copies to a token-auth registry with credentials from the auth file', async () => {
    const r = await copy(['--insecure', `${source.host},${tokenReg.host}`, `${source.host}/org/multi:1`, `${tokenReg.host}/team/multi:1`]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await rawDigest(`${tokenReg.host}/team/multi:1`, `robot:${SECRET}`)).toBe(multi.digest);
    expect(issuer.log.some((l) => l.user === 'robot' && l.access.some((a) => a.actions.includes('push')))).toBe(true);
  });
});
