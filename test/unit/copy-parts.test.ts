import { describe, expect, it } from 'vitest';
import { credentialsFor, normaliseKey, parseAuthFile } from '../../src/transfer/auth-file.js';
import { filterIndex, parseOsFilter, parsePlatformList, platformOf } from '../../src/transfer/platforms.js';
import { backoffMs, isRetryable, retryAfterMs, withRetry } from '../../src/transfer/retry.js';
import { RemoteError } from '../../src/upstream/registry-client.js';
import { UpstreamError } from '../../src/upstream/errors.js';

describe('retry', () => {
  it('retries 5xx, 429, timeouts and broken connections; not 4xx, auth or protocol failures', () => {
    for (const s of [500, 502, 503, 429, 408]) expect(isRetryable(new RemoteError('r', s, 'x')), String(s)).toBe(true);
    for (const s of [400, 401, 403, 404, 405]) expect(isRetryable(new RemoteError('r', s, 'x')), String(s)).toBe(false);
    expect(isRetryable(new UpstreamError('unreachable', 'x'))).toBe(true);
    expect(isRetryable(new UpstreamError('timeout', 'x'))).toBe(true);
    expect(isRetryable(new UpstreamError('auth', 'x'))).toBe(false);
    expect(isRetryable(Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }))).toBe(true);
  });
  it('reads Retry-After as seconds or an HTTP date', () => {
    expect(retryAfterMs('3')).toBe(3000);
    expect(retryAfterMs('Wed, 02 Dec 2026 10:00:05 GMT', Date.parse('Wed, 02 Dec 2026 10:00:00 GMT'))).toBe(5000);
    expect(retryAfterMs('soon')).toBeUndefined();
  });
  it('backs off exponentially with jitter, waits at least Retry-After, never more than the cap', () => {
    const o = { baseDelayMs: 500, maxDelayMs: 30_000 };
    expect(backoffMs(1, new Error('x'), o, () => 1)).toBe(500);
    expect(backoffMs(3, new Error('x'), o, () => 0)).toBe(1000);
    expect(backoffMs(1, new RemoteError('r', 429, 'x', [], '7'), o, () => 1)).toBe(7000);
    expect(backoffMs(1, new RemoteError('r', 429, 'x', [], '600'), o, () => 1)).toBe(30_000);
  });
  it('gives up after the retries, and at once on a permanent failure', async () => {
    const waits: number[] = [];
    let calls = 0;
    const sleep = async (ms: number): Promise<void> => { waits.push(ms); };
    await expect(withRetry(async () => { calls++; throw new RemoteError('r', 503, 'busy'); }, { retries: 3, baseDelayMs: 100, maxDelayMs: 1000, sleep })).rejects.toThrow('busy');
    expect(calls).toBe(4);
    expect(waits).toHaveLength(3);
    calls = 0;
    await expect(withRetry(async () => { calls++; throw new RemoteError('r', 404, 'gone'); }, { retries: 3, baseDelayMs: 100, maxDelayMs: 1000, sleep })).rejects.toThrow('gone');
    expect(calls).toBe(1);
    let n = 0;
    expect(await withRetry(async () => { if (n++ < 2) throw new RemoteError('r', 429, 'slow'); return 'ok'; }, { retries: 3, baseDelayMs: 1, maxDelayMs: 1, sleep })).toBe('ok');
  });
});

describe('platform filter', () => {
  const e = (os: string, architecture: string, variant?: string): unknown => ({ digest: 'd', platform: variant ? { os, architecture, variant } : { os, architecture } });
  it('--platforms: os/arch matches every variant, os/arch/variant only that one', () => {
    const f = parsePlatformList('linux/amd64,linux/arm/v7');
    expect(f.matches(platformOf(e('linux', 'amd64')))).toBe(true);
    expect(f.matches(platformOf(e('linux', 'amd64', 'v3')))).toBe(true);
    expect(f.matches(platformOf(e('linux', 'arm', 'v7')))).toBe(true);
    expect(f.matches(platformOf(e('linux', 'arm', 'v6')))).toBe(false);
    expect(f.matches(platformOf(e('windows', 'amd64')))).toBe(false);
    expect(f.matches(platformOf({ digest: 'attestation' }))).toBe(false);
    for (const bad of ['linux', 'linux/amd64/v1/x', 'Linux/AMD64', ',']) expect(() => parsePlatformList(bad), bad).toThrow();
  });
  it('--filter-by-os: a regular expression over the whole os/arch[/variant]', () => {
    const f = parseOsFilter('linux/arm.*');
    expect(f.matches(platformOf(e('linux', 'arm64', 'v8')))).toBe(true);
    expect(f.matches(platformOf(e('linux', 'amd64')))).toBe(false);
    expect(parseOsFilter('amd64').matches(platformOf(e('linux', 'amd64')))).toBe(false);
    expect(() => parseOsFilter('(')).toThrow(/invalid regular expression/);
  });
  it('filterIndex keeps the chosen entries and every other field', () => {
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'm', manifests: [{ digest: 'a' }, { digest: 'b' }, { digest: 'c' }], annotations: { x: 'y' } }));
    expect(JSON.parse(filterIndex(body, new Set(['a', 'c'])).toString())).toEqual({ schemaVersion: 2, mediaType: 'm', manifests: [{ digest: 'a' }, { digest: 'c' }], annotations: { x: 'y' } });
  });
});

describe('auth file', () => {
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  it('reads auth and username/password entries under any key spelling; longest key wins', () => {
    const f = parseAuthFile(JSON.stringify({
      auths: {
        'https://index.docker.io/v1/': { auth: b64('hub:p1') },
        'quay.io': { auth: b64('quay:p:with:colons') },
        'quay.io/team': { username: 'team', password: 'p3' },
        'http://127.0.0.1:5000': { auth: b64('local:p4') },
        'ghcr.io': { identitytoken: 'x' },
      },
      credsStore: 'desktop',
    }), 'f.json');
    expect(credentialsFor(f, 'docker.io', 'library/nginx')).toEqual({ username: 'hub', password: 'p1' });
    expect(credentialsFor(f, 'quay.io', 'org/app')).toEqual({ username: 'quay', password: 'p:with:colons' });
    expect(credentialsFor(f, 'quay.io', 'team/app')).toEqual({ username: 'team', password: 'p3' });
    expect(credentialsFor(f, 'quay.io', 'teamx/app')?.username).toBe('quay');
    expect(credentialsFor(f, '127.0.0.1:5000', 'a')?.username).toBe('local');
    expect(credentialsFor(f, 'ghcr.io', 'a')).toBeUndefined();
    expect(normaliseKey('registry-1.docker.io')).toBe('docker.io');
  });
  it('errors name the file and never the secret', () => {
    expect(() => parseAuthFile('{', 'a.json')).toThrow(/^a\.json: not valid JSON$/);
    const secret = b64('nocolon-secret');
    let msg = '';
    try { parseAuthFile(JSON.stringify({ auths: { 'q.io': { auth: secret } } }), 'a.json'); } catch (err) { msg = (err as Error).message; }
    expect(msg).toMatch(/a\.json: auths\.q\.io\.auth/);
    expect(msg).not.toContain('nocolon-secret');
    expect(msg).not.toContain(secret);
  });
});

describe('registry clients of a copy', async () => {
  const { RegistrySet } = await import('../../src/transfer/registries.js');
  const { parseConfigText } = await import('../../src/config/load.js');
  const config = parseConfigText('upstreams:\n  docker.io:\n    url: https://registry-1.docker.io\n    username: cfg\n    password: cfgpw\n', {}, 'c.yaml');
  const auth = parseAuthFile(JSON.stringify({ auths: { 'quay.io': { auth: Buffer.from('q:qp').toString('base64') } } }), 'a.json');
  const set = new RegistrySet({ auth, insecure: new Set(['127.0.0.1:5000']), config });
  it('sources use regcache config credentials when the auth file has none; destinations never do', () => {
    const src = set.client('docker.io', 'library/nginx', 'source').transport.config;
    expect(src).toMatchObject({ url: 'https://registry-1.docker.io', username: 'cfg', password: 'cfgpw', insecureSkipVerify: false });
    const dst = set.client('docker.io', 'library/nginx', 'destination').transport.config;
    expect(dst.username).toBeUndefined();
    expect(set.client('quay.io', 'org/app', 'destination').transport.config).toMatchObject({ url: 'https://quay.io', username: 'q' });
  });
  it('--insecure hosts are plain HTTP; a loopback registry may use a loopback token realm', () => {
    const c = set.client('127.0.0.1:5000', 'a', 'destination').transport.config;
    expect(c.url).toBe('http://127.0.0.1:5000');
    expect(c.allowedHosts).toContain('127.0.0.0/8');
    expect(set.client('quay.io', 'a', 'source').transport.config.allowedHosts).toEqual([]);
  });
});
