import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { configDocRows, renderConfigTable, TABLE_BEGIN, TABLE_END } from '../../src/config/docs-table.js';
import { restartNeededKeys } from '../../src/config/reload.js';
import { configWarnings } from '../../src/config/warnings.js';
import { validateConfig } from '../../src/config/validate.js';
import { configError } from './config-error.js';
import type { Config } from '../../src/config/types.js';

type Raw = Record<string, unknown>;

const error = configError;

/** A raw document with `value` at the docs key path (`upstreams.<host>.x` goes to host a.io, which gets a url). */
function docWith(path: string, value: unknown): Raw {
  const parts = path.split('.').map((p) => (p === '<host>' ? 'a.io' : p === '<name>' ? 'j1' : p === '<pattern>' ? 'team/**' : p));
  const doc: Raw = {};
  if (parts[0] === 'upstreams' || parts[0] === 'sync' || parts[0] === 'syncLimits') doc.upstreams = { 'a.io': { url: 'https://a.io' } };
  if (parts[0] === 'sync') doc.sync = { j1: { source: 'a.io/x' } };
  if (parts[0] === 'webhooks') doc.webhooks = { j1: { url: 'http://127.0.0.1:9/' } };
  if (parts[0] === 'tls') doc.tls = { cert: 'c.pem', key: 'k.pem' };
  if (parts[0] === 'auth') doc.auth = { htpasswd: 'h' };
  if (parts[0] === 'replicas') {
    doc.storage = { metadata: 'postgres' };
    doc.replicas = { listen: '127.0.0.1:5001', advertise: 'http://10.0.0.5:5001', secret: 's' };
  }
  let o = doc;
  for (const p of parts.slice(0, -1)) o = (o[p] ??= {}) as Raw;
  o[parts.at(-1)!] = value;
  return doc;
}

const ALL_KEYS = configDocRows().map((r) => r.key);

describe('schema: every key', () => {
  it('defaults, when the file is empty', () => {
    expect(validateConfig({})).toEqual({
      listen: { host: '0.0.0.0', port: 5000 },
      dataDir: './data',
      logLevel: 'info',
      logFormat: 'auto',
      cache: { tagTTL: 300_000, maxManifestSize: 4 * 1024 * 1024, maxManifestReferences: 1000, maxTagListSize: 4 * 1024 * 1024 },
      upstreams: [],
      sync: [],
      copy: [],
      syncLimits: [],
      webhooks: [],
      retention: { interval: 600_000 },
      metrics: {},
      hosted: { names: [], uploadExpiry: 86_400_000, maxManifestSize: 4 * 1024 * 1024, gcGrace: 3_600_000, gcInterval: 3_600_000 },
      hostedRepositories: [],
      catalog: { anonymous: true },
      upstreamTimeouts: { connect: 10_000, headers: 30_000, idle: 30_000, manifestTotal: 30_000 },
      upstreamHealth: { maxFails: 3, failTimeout: 10_000 },
      server: {
        headersTimeout: 10_000, requestTimeout: 0, keepAliveTimeout: 65_000, idleTimeout: 120_000,
        maxConnections: 4096, shutdownGrace: 30_000, streamStallTimeout: 60_000,
      },
      storage: { blobs: 'filesystem', metadata: 'sqlite', s3Region: 'us-east-1', s3ForcePathStyle: false },
    });
    expect(validateConfig({ upstreams: { 'a.io': { url: 'https://a.io' } }, tls: { cert: 'c', key: 'k' }, auth: { htpasswd: 'h' } })).toMatchObject({
      upstreams: [{ host: 'a.io', url: 'https://a.io', insecureSkipVerify: false, immutableTags: [], allowedHosts: [], blobReader: 'socket' }],
      tls: { cert: 'c', key: 'k' },
      auth: { htpasswd: 'h', anonymousPull: false, protectMetrics: true, rules: [] },
    });
  });

  it.each(ALL_KEYS)('%s: a wrong value fails with a message naming the key', (key) => {
    const path = key.replace('<host>', 'a.io').replace('<name>', 'j1').replace('<pattern>', 'team/**');
    expect(error(docWith(key, { wrong: true }))).toMatch(new RegExp(`^${path.replace(/[.*]/g, '\\$&')}: `));
  });

  it('required keys say so', () => {
    expect(error({ upstreams: { 'ghcr.io': {} } })).toBe('upstreams.ghcr.io.url: required');
    expect(error({ tls: { cert: 'c' } })).toBe('tls.key: required');
    expect(error({ auth: { anonymousPull: true } })).toBe('auth.htpasswd: required');
    expect(error({ storage: { blobs: 's3' } })).toBe('storage.s3Bucket: required with blobs: s3');
    expect(error({ replicas: { listen: '127.0.0.1:5001', advertise: 'http://a:5001', secret: 's' } })).toMatch(/^replicas: needs storage.metadata: postgres/);
    expect(error({ storage: { metadata: 'postgres' }, listen: '0.0.0.0:5000', replicas: { listen: '127.0.0.1:5000', advertise: 'http://a:5000', secret: 's' } }))
      .toMatch(/^replicas\.listen: port 5000 is also listen/);
  });

  it('unknown keys are refused at every level, naming the path', () => {
    expect(error({ lisen: '0.0.0.0:5000' })).toBe('lisen: unknown key');
    expect(error({ cache: { ttl: '5m' } })).toBe('cache.ttl: unknown key');
    expect(error({ server: { maxStreams: 5 } })).toBe('server.maxStreams: unknown key');
    expect(error({ upstreams: { 'a.io': { url: 'https://a.io', pasword: 'x' } } })).toBe('upstreams.a.io.pasword: unknown key');
    expect(error({ tls: { cert: 'c', key: 'k', ca: 'x' } })).toBe('tls.ca: unknown key');
    expect(error({ retention: [] })).toBe('retention: must be a mapping');
    expect(error({ upstreams: { 'A.io': { url: 'https://a.io' } } })).toMatch(/^upstreams\.A\.io: invalid registry host/);
  });

  it('username and password go together; defaultUpstream must be configured', () => {
    expect(error({ upstreams: { 'a.io': { url: 'https://a.io', username: 'u' } } })).toBe('upstreams.a.io: username and password go together');
    expect(validateConfig({ upstreams: { 'a.io': { url: 'https://a.io', username: 'u', password: 1234 } } }).upstreams[0]!.password).toBe('1234');
    expect(error({ defaultUpstream: 'b.io', upstreams: { 'a.io': { url: 'https://a.io' } } })).toBe('defaultUpstream: b.io is not a configured upstream');
  });

  it('allowedHosts takes host names, IPs and CIDRs', () => {
    const ok = ['registry.internal', '10.0.0.5', '::1', '10.0.0.0/8', 'fd00::/8'];
    expect(validateConfig(docWith('upstreams.<host>.allowedHosts', ok)).upstreams[0]!.allowedHosts).toEqual(ok);
    expect(error(docWith('upstreams.<host>.allowedHosts', ['10.0.0.0/33']))).toMatch(/^upstreams\.a\.io\.allowedHosts\[0\]: invalid CIDR/);
    expect(error(docWith('upstreams.<host>.allowedHosts', ['ok.io', 'no spaces']))).toMatch(/^upstreams\.a\.io\.allowedHosts\[1\]: invalid host/);
  });
});

describe('cross-key port rules', () => {
  const ups = (ports: Record<string, number>): Raw =>
    Object.fromEntries(Object.entries(ports).map(([h, port]) => [h, { url: `https://${h}`, port }]));

  it('an upstream port equal to listen fails naming both keys, whatever listen\'s host', () => {
    for (const listen of ['0.0.0.0:5000', '127.0.0.1:5000', '[::1]:5000']) {
      expect(error({ listen, upstreams: ups({ 'quay.io': 5000 }) })).toBe(
        `upstreams.quay.io.port: port 5000 is also listen (${listen.replace(/[[\]]/g, '')}); each listener needs its own port`,
      );
    }
  });

  it('an upstream port equal to metrics.listen fails when the hosts overlap', () => {
    expect(error({ metrics: { listen: '127.0.0.1:9090' }, upstreams: ups({ 'quay.io': 9090 }) })).toBe(
      'upstreams.quay.io.port: port 9090 is also metrics.listen (127.0.0.1:9090); each listener needs its own port',
    );
    // Upstream ports bind on listen's host: distinct specific addresses do not collide.
    expect(error({ listen: '10.0.0.1:5000', metrics: { listen: '127.0.0.1:9090' }, upstreams: ups({ 'quay.io': 9090 }) })).toBe('');
  });

  it('metrics.listen equal to listen fails; two upstreams on one port fail', () => {
    expect(error({ listen: ':5000', metrics: { listen: '127.0.0.1:5000' } })).toBe(
      'metrics.listen: port 5000 is also listen (0.0.0.0:5000); each listener needs its own port',
    );
    expect(error({ upstreams: ups({ 'a.io': 6000, 'b.io': 6000 }) })).toBe(
      'upstreams.b.io.port: port 6000 is also upstreams.a.io.port (0.0.0.0:6000); each listener needs its own port',
    );
  });

  it('port 0 (any free port) never clashes', () => {
    expect(error({ listen: '127.0.0.1:0', metrics: { listen: '127.0.0.1:0' } })).toBe('');
  });
});

describe('upstream url', () => {
  const url = (u: string) => validateConfig({ upstreams: { 'a.io': { url: u } } }).upstreams[0]!.url;

  it('drops a trailing slash and keeps a path prefix', () => {
    expect(url('https://a.io/')).toBe('https://a.io');
    expect(url('http://127.0.0.1:5000')).toBe('http://127.0.0.1:5000');
    expect(url('https://a.io/mirror/')).toBe('https://a.io/mirror');
  });

  it('refuses /v2 at the end, with the URL to use instead', () => {
    for (const u of ['https://a.io/v2/', 'https://a.io/v2', 'https://a.io/prefix/v2//']) {
      expect(error({ upstreams: { 'a.io': { url: u } } })).toMatch(/^upstreams\.a\.io\.url: .* ends in \/v2: give the registry base URL \(https:\/\/a\.io(\/prefix)?\)/);
    }
    expect(url('https://a.io/v2x')).toBe('https://a.io/v2x');
  });

  it('refuses other schemes, credentials, query and fragment', () => {
    expect(error({ upstreams: { 'a.io': { url: 'ftp://a.io' } } })).toMatch(/^upstreams\.a\.io\.url: .*must be http/);
    expect(error({ upstreams: { 'a.io': { url: 'https://u:p@a.io' } } })).toMatch(/^upstreams\.a\.io\.url: must not carry credentials/);
    expect(error({ upstreams: { 'a.io': { url: 'https://u:p@a.io' } } })).not.toContain(':p@');
    expect(error({ upstreams: { 'a.io': { url: 'https://a.io/?x=1' } } })).toMatch(/no query or fragment/);
    expect(error({ upstreams: { 'a.io': { url: 'not a url' } } })).toMatch(/^upstreams\.a\.io\.url: not a URL/);
  });
});

describe('retention: 0 means off', () => {
  it('maxAge: 0 and maxSize: 0 are off like interval: 0', () => {
    const r = validateConfig({ retention: { maxAge: 0, maxSize: 0, interval: 0 } }).retention;
    expect(r).toEqual({ interval: 0 });
    expect(validateConfig({ retention: { maxAge: '0', maxSize: '0GiB' } }).retention).toEqual({ interval: 600_000 });
    expect(validateConfig({ retention: { maxAge: '1h', maxSize: '1MiB' } }).retention).toEqual({ maxAge: 3_600_000, maxSize: 1024 ** 2, interval: 600_000 });
  });
});

describe('reload classification', () => {
  const base = validateConfig({ upstreams: { 'a.io': { url: 'https://a.io', port: 6000 } }, defaultUpstream: 'a.io' });
  const change = (doc: Raw): string[] => restartNeededKeys(base, validateConfig({
    upstreams: { 'a.io': { url: 'https://a.io', port: 6000 } }, defaultUpstream: 'a.io', ...doc,
  }));

  it('nothing changed: nothing to restart', () => {
    expect(restartNeededKeys(base, structuredClone(base))).toEqual([]);
  });

  it('restart keys are named by their full path', () => {
    expect(change({ listen: '0.0.0.0:5001' })).toEqual(['listen']);
    expect(change({ dataDir: '/d', logLevel: 'debug', logFormat: 'json' })).toEqual(['dataDir', 'logLevel', 'logFormat']);
    expect(change({ tls: { cert: 'c', key: 'k' } })).toEqual(['tls.cert', 'tls.key']);
    expect(change({ cache: { maxManifestSize: '8MiB' } })).toEqual(['cache.maxManifestSize']);
    expect(change({ metrics: { listen: '127.0.0.1:9090' } })).toEqual(['metrics.listen']);
    expect(change({ auth: { htpasswd: 'h' } })).toEqual(['auth.htpasswd', 'auth.anonymousPull', 'auth.protectMetrics', 'auth.publicStatus', 'auth.rules']);
    expect(change({ upstreamTimeouts: { idle: '1m' }, upstreamHealth: { maxFails: 5 } })).toEqual(['upstreamTimeouts.idle', 'upstreamHealth.maxFails']);
    expect(change({ server: { idleTimeout: '1m', maxConnections: 10 } })).toEqual(['server.idleTimeout', 'server.maxConnections']);
  });

  it('live keys need no restart', () => {
    expect(change({ cache: { tagTTL: '1h' } })).toEqual([]);
    expect(change({ retention: { maxAge: '1h', maxSize: '1GiB', interval: '1m' } })).toEqual([]);
    expect(change({ server: { shutdownGrace: '5s' } })).toEqual([]);
    expect(restartNeededKeys(base, validateConfig({
      upstreams: { 'b.io': { url: 'https://b.io', port: 6001, username: 'u', password: 'p', tagTTL: '1m', allowedHosts: ['10.0.0.0/8'] } },
    }))).toEqual([]);
  });

  it('every key is classified as docs/config.md says', () => {
    const restart = configDocRows().filter((r) => r.apply === 'restart').map((r) => r.key);
    // The keys App.reload cannot apply (they shape listeners, the store, the logger or the upstream clients).
    const sections = ['listen', 'dataDir', 'logLevel', 'logFormat', 'tls.', 'metrics.', 'auth.', 'hosted.', 'catalog.', 'upstreamTimeouts.', 'upstreamHealth.', 'server.', 'cache.maxManifestSize',
      'cache.maxManifestReferences', 'cache.maxTagListSize', 'storage.', 'replicas.'];
    const live = ['server.shutdownGrace', 'hosted.gcGrace', 'hosted.gcInterval'];
    const expected = ALL_KEYS.filter((k) => sections.some((s) => k === s || (s.endsWith('.') && k.startsWith(s))) && !live.includes(k));
    expect(restart).toEqual(expected);
  });
});

describe('configWarnings', () => {
  it('warns when there are no upstreams', () => {
    expect(configWarnings(validateConfig({}))).toEqual([expect.stringMatching(/^no upstreams configured: every pull answers 404/)]);
    expect(configWarnings(validateConfig({ upstreams: { 'a.io': { url: 'https://a.io' } } }))).toEqual([]);
  });

  it('warns about credentials over plain http, without the credentials', () => {
    const w = configWarnings(validateConfig({ upstreams: { 'a.io': { url: 'http://a.io', username: 'bot', password: 'hunter2' } } }));
    expect(w).toEqual(['upstreams.a.io: credentials are sent to http://a.io over plain http://']);
    expect(w.join()).not.toMatch(/hunter2|bot/);
  });
});

describe('docs/config.md', () => {
  const doc = readFileSync(new URL('../../docs/config.md', import.meta.url), 'utf8');
  const between = doc.slice(doc.indexOf(TABLE_BEGIN) + TABLE_BEGIN.length + 1, doc.indexOf(TABLE_END));

  it('documents exactly the schema\'s keys (no missing, no stale)', () => {
    const documented = [...between.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]);
    expect(documented).toEqual(ALL_KEYS);
  });

  it('has the table the schema generates (npm run docs:config)', () => {
    expect(between).toBe(renderConfigTable());
  });

  it('the shipped config/regcache.yaml validates without warnings', () => {
    const cfg: Config = validateConfig(parse(readFileSync(new URL('../../config/regcache.yaml', import.meta.url), 'utf8')));
    expect(cfg.upstreams.length).toBeGreaterThan(0);
    expect(configWarnings(cfg)).toEqual([]);
  });
});
