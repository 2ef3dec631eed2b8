/**
 * Upstream authentication end to end: a docker-registry with `auth: token` and a token
 * issuer (Bearer flow, token cached per scope), and one with `auth: htpasswd` (Basic).
 * Credentials come from the environment (${VAR}) and never appear in logs or errors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanupAll, httpProbe, makeImage, makeLayer, pushImage, skopeoPullDigests, startRegcache, startRegistry,
  startTokenIssuer, stopAllChildren, type Image, type Regcache, type Registry, type TokenIssuer,
} from '../helpers/index.js';

const SECRET = 's3cret-Pa55word-never-logged';
let issuer: TokenIssuer;
let tokenRegistry: Registry;
let basicRegistry: Registry;
let rc: Regcache;
let privateImg: Image;
let basicImg: Image;

beforeAll(async () => {
  issuer = await startTokenIssuer({ service: 'test-registry', users: { robot: SECRET }, anonymous: 'deny' });
  tokenRegistry = await startRegistry({ auth: 'token', tokenIssuer: issuer });
  basicRegistry = await startRegistry({ auth: 'htpasswd', htpasswd: { user: 'robot', password: SECRET } });
  privateImg = makeImage({ format: 'oci', layers: [makeLayer({ 'secret.txt': 'private' }), makeLayer({ randomBytes: 2 * 1024 * 1024, seed: 'tok' })] });
  basicImg = makeImage({ format: 'docker', layers: [makeLayer({ 'basic.txt': 'basic' })] });
  const pushToken = issuer.mint([{ type: 'repository', name: 'org/private', actions: ['pull', 'push'] }], 'robot');
  await pushImage(tokenRegistry.url, 'org/private', 'v1', privateImg, { bearer: pushToken });
  await pushImage(basicRegistry.url, 'org/basic', 'v1', basicImg, { user: 'robot', password: SECRET });
  rc = await startRegcache({
    config: {
      logLevel: 'debug',
      // The token issuer is on loopback: realms there are refused unless allow-listed.
      upstreams: {
        'token.example': { url: tokenRegistry.url, username: 'robot', password: '${UPSTREAM_PASSWORD}', allowedHosts: ['127.0.0.1'] },
        'basic.example': { url: basicRegistry.url, username: 'robot', password: '${UPSTREAM_PASSWORD}' },
        'noauth.example': { url: tokenRegistry.url, allowedHosts: ['127.0.0.1'] },
      },
    },
    env: { UPSTREAM_PASSWORD: SECRET },
  });
});

afterAll(async () => {
  await rc?.stop();
  await tokenRegistry?.stop();
  await basicRegistry?.stop();
  await issuer?.close();
  await stopAllChildren();
  await cleanupAll();
});

describe('upstream auth', () => {
  it('Bearer: pulls through the token flow with configured credentials, token cached per scope', async () => {
    issuer.reset();
    const r = await skopeoPullDigests(`docker://${rc.host}/token.example/org/private:v1`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.manifestDigest).toBe(privateImg.digest);
    expect(issuer.lastAuthorization).toBe(`Basic ${Buffer.from(`robot:${SECRET}`).toString('base64')}`);
    // One token for repository:org/private:pull serves the manifest and every blob.
    expect(issuer.requests).toBe(1);
    expect(issuer.log[0]!.scopes).toEqual(['repository:org/private:pull']);
  });

  it('Basic: pulls from an htpasswd upstream', async () => {
    const r = await skopeoPullDigests(`docker://${rc.host}/basic.example/org/basic:v1`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.manifestDigest).toBe(basicImg.digest);
  });

  it('without credentials the token issuer refuses and the client gets an OCI error, not a hang', async () => {
    const r = await httpProbe(`${rc.url}/v2/noauth.example/org/private/manifests/v1`, { timeoutMs: 10_000 });
    expect(r.status).toBeGreaterThanOrEqual(400);
    const body = JSON.parse(r.body.toString()) as { errors: Array<{ code: string; message: string }> };
    expect(body.errors[0]!.code).toMatch(/UPSTREAM_ERROR|UNAUTHORIZED|DENIED/);
  });

  it('credentials never appear in logs or error bodies', async () => {
    const b64 = Buffer.from(`robot:${SECRET}`).toString('base64');
    for (const text of [rc.stdout(), rc.stderr()]) {
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain(b64);
    }
  });
});
