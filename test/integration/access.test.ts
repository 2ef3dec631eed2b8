/**
 * Optional client access control: Basic auth against a bcrypt htpasswd file, with a
 * challenge skopeo understands; anonymous pulls when allowed; /metrics and health separate;
 * credentials never logged.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanupAll, htpasswdLine, httpProbe, makeImage, makeLayer, pushImage, skopeoPullDigests, startRegcache, startRegistry,
  stopAllChildren, tmpDir, type Image, type Regcache, type Registry,
} from '../helpers/index.js';

const PASSWORD = 'pull-Pa55-word-not-in-logs';
let upstream: Registry;
let img: Image;
let htpasswd: string;

beforeAll(async () => {
  upstream = await startRegistry();
  img = makeImage({ format: 'oci', layers: [makeLayer({ 'x.txt': 'access' })] });
  await pushImage(upstream.url, 'acc/app', 'v1', img);
  htpasswd = join(tmpDir('regcache-htpasswd-'), 'htpasswd');
  writeFileSync(htpasswd, `${await htpasswdLine('puller', PASSWORD)}\n`);
});

afterAll(async () => {
  await upstream?.stop();
  await stopAllChildren();
  await cleanupAll();
});

const basic = (u: string, p: string): string => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

describe('auth: htpasswd, anonymousPull false', () => {
  let rc: Regcache;
  beforeAll(async () => {
    rc = await startRegcache({ config: { auth: { htpasswd }, defaultUpstream: 'docker.io', upstreams: { 'docker.io': { url: upstream.url } } } });
  });
  afterAll(async () => rc?.stop());

  it('refuses anonymous and wrong credentials with a Basic challenge', async () => {
    for (const headers of [{}, { authorization: basic('puller', 'wrong') }, { authorization: basic('nobody', PASSWORD) }]) {
      const r = await httpProbe(`${rc.url}/v2/acc/app/manifests/v1`, { headers });
      expect(r.status).toBe(401);
      expect(r.headers['www-authenticate']).toBe('Basic realm="regcache"');
      expect(JSON.parse(r.body.toString()).errors[0].code).toBe('UNAUTHORIZED');
    }
    expect((await httpProbe(`${rc.url}/v2/`)).status).toBe(401);
    expect((await httpProbe(`${rc.url}/metrics`)).status).toBe(401);
  });

  it('health endpoints stay open', async () => {
    expect((await httpProbe(`${rc.url}/healthz`)).status).toBe(200);
    expect((await httpProbe(`${rc.url}/readyz`)).status).toBe(200);
  });

  it('skopeo pulls with credentials', async () => {
    const r = await skopeoPullDigests(`docker://${rc.host}/acc/app:v1`, { srcCreds: `puller:${PASSWORD}` });
    expect(r.code, r.stderr).toBe(0);
    expect(r.manifestDigest).toBe(img.digest);
    const m = await httpProbe(`${rc.url}/metrics`, { headers: { authorization: basic('puller', PASSWORD) } });
    expect(m.status).toBe(200);
  });

  it('without credentials skopeo fails', async () => {
    const r = await skopeoPullDigests(`docker://${rc.host}/acc/app:v1`);
    expect(r.code).not.toBe(0);
  });

  it('never logs the credentials', () => {
    expect(rc.stdout()).not.toContain(PASSWORD);
    expect(rc.stdout()).not.toContain(Buffer.from(`puller:${PASSWORD}`).toString('base64'));
  });
});

describe('auth: anonymousPull true, protectMetrics true', () => {
  it('pulls need no login; /metrics does', async () => {
    const rc = await startRegcache({ config: { auth: { htpasswd, anonymousPull: true }, defaultUpstream: 'docker.io', upstreams: { 'docker.io': { url: upstream.url } } } });
    try {
      expect((await httpProbe(`${rc.url}/v2/acc/app/manifests/v1`)).status).toBe(200);
      expect((await httpProbe(`${rc.url}/metrics`)).status).toBe(401);
    } finally {
      await rc.stop();
    }
  });
});

describe('config errors', () => {
  it('a malformed htpasswd file fails the start with a message naming it', async () => {
    const bad = join(tmpDir('regcache-htpasswd-bad-'), 'htpasswd');
    writeFileSync(bad, 'puller:plaintext\n');
    await expect(startRegcache({ config: { auth: { htpasswd: bad }, upstreams: { 'docker.io': { url: upstream.url } } }, startTimeoutMs: 5000 }))
      .rejects.toThrow(/not a bcrypt htpasswd entry/);
  });
});
