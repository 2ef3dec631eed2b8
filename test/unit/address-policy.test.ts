import type { LookupAddress } from 'node:dns';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/validate.js';
import type { AddressClass } from '../../src/protocol/ip-ranges.js';
import { AddressPolicy, AddressRefusedError, decideAddress, refusal } from '../../src/upstream/address-policy.js';
import { credentialsAllowedFor } from '../../src/upstream/token-auth.js';

describe('decideAddress', () => {
  it.each<[AddressClass, boolean, boolean, boolean]>([
    // class, allow-listed, upstream private -> allowed
    ['public', false, false, true],
    ['public', false, true, true],
    ['private', false, false, false],
    ['private', false, true, true],
    ['private', true, false, true],
    ['loopback', false, false, false],
    ['loopback', false, true, false],
    ['loopback', true, false, true],
    ['link-local', false, true, false],
    ['link-local', true, false, true],
    ['unspecified', false, true, false],
    ['unspecified', true, false, true],
    ['reserved', false, true, false],
    ['reserved', true, false, true],
  ])('%s (allow-listed %s, upstream private %s): allowed %s', (cls, allowListed, upstreamPrivate, allowed) => {
    expect(decideAddress(cls, { allowListed, upstreamPrivate }) === undefined).toBe(allowed);
  });
});

/** A resolver from a fixed table, counting calls; unknown names fail like getaddrinfo. */
function fakeDns(table: Record<string, string[]>): { resolve: (h: string) => Promise<LookupAddress[]>; calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    resolve: (h) => {
      calls.push(h);
      const a = table[h];
      if (!a) return Promise.reject(Object.assign(new Error(`getaddrinfo ENOTFOUND ${h}`), { code: 'ENOTFOUND' }));
      return Promise.resolve(a.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })));
    },
  };
}

const DNS = {
  'registry.example': ['203.0.113.10'],
  'onprem.example': ['10.0.0.5'],
  'cdn.example': ['198.51.100.7', '2001:db8::7'],
  'store.lan': ['10.0.0.9'],
  'metadata.example': ['169.254.169.254'],
  'sneaky.example': ['198.51.100.8', '127.0.0.1'],
  'mapped.example': ['::ffff:127.0.0.1'],
  'localhost': ['127.0.0.1', '::1'],
  'allowed.internal': ['127.0.0.1'],
};

/** Runs the policy's socket lookup the way net.connect does. */
function lookup(p: AddressPolicy, host: string, options: { all?: boolean; family?: number } = {}): Promise<string[]> {
  return new Promise((resolve, reject) => {
    p.lookup(host, options as never, (err: Error | null, address: string | LookupAddress[]) => {
      if (err) reject(err);
      else resolve(Array.isArray(address) ? address.map((a) => a.address) : [address]);
    });
  });
}

const refusedMessage = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AddressRefusedError);
    return (err as Error).message;
  }
  throw new Error('not refused');
};

describe('AddressPolicy', () => {
  const policy = (allowed: string[], upstream = 'registry.example') => {
    const dns = fakeDns(DNS);
    return { p: new AddressPolicy(allowed, upstream, 'upstreams.test', dns.resolve), dns };
  };

  it.each([
    ['127.0.0.1', 'loopback'], ['::1', 'loopback'], ['[::1]', 'loopback'], ['::ffff:7f00:1', 'loopback'],
    ['0.0.0.0', 'unspecified'], ['::', 'unspecified'], ['169.254.169.254', 'link-local'], ['fe80::1', 'link-local'],
    ['10.1.2.3', 'private'], ['fd00::1', 'private'], ['224.0.0.1', 'reserved'],
  ])('an IP-literal target %s is refused before any connection (%s)', async (host, what) => {
    const { p, dns } = policy([]);
    const msg = await refusedMessage(p.checkHost(host));
    expect(msg).toContain(what);
    expect(msg).toContain('upstreams.test.allowedHosts');
    // The private check resolved the upstream's own name, nothing else.
    expect(dns.calls.filter((c) => c !== 'registry.example')).toEqual([]);
  });

  it('URL-normalised numeric forms arrive as dotted IPv4 and are refused', async () => {
    const { p } = policy([]);
    for (const u of ['http://2130706433/', 'http://0x7f.1/', 'http://0177.0.0.1/', 'http://[::ffff:127.0.0.1]/', 'http://0/']) {
      await refusedMessage(p.checkHost(new URL(u).hostname));
    }
  });

  it('public literals pass; names are left to the socket lookup', async () => {
    const { p, dns } = policy([]);
    await p.checkHost('198.51.100.7');
    await p.checkHost('sneaky.example');
    expect(dns.calls).toEqual([]);
  });

  it('lookup: a name is refused if any of its addresses is refused (no picking the good one)', async () => {
    const { p } = policy([]);
    expect(await refusedMessage(lookup(p, 'sneaky.example'))).toContain('sneaky.example (127.0.0.1) is a loopback address');
    await refusedMessage(lookup(p, 'localhost'));
    await refusedMessage(lookup(p, 'mapped.example'));
    expect(await refusedMessage(lookup(p, 'metadata.example'))).toContain('link-local');
  });

  it('lookup: answers in the shape net asks for (single address, or all of them for family autoselection)', async () => {
    const { p } = policy([]);
    expect(await lookup(p, 'cdn.example')).toEqual(['198.51.100.7']);
    expect(await lookup(p, 'cdn.example', { all: true })).toEqual(['198.51.100.7', '2001:db8::7']);
    expect(await lookup(p, 'cdn.example', { family: 6 })).toEqual(['2001:db8::7']);
    await expect(lookup(p, 'nowhere.example')).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });

  it('private targets: refused for a public upstream, allowed when the upstream itself resolves to a private address', async () => {
    const pub = policy([]);
    expect(await refusedMessage(lookup(pub.p, 'store.lan'))).toContain('private');
    const onprem = policy([], 'onprem.example');
    expect(await lookup(onprem.p, 'store.lan')).toEqual(['10.0.0.9']);
    const literal = policy([], '192.168.0.2');
    await literal.p.checkHost('10.9.9.9');
    // ...but never loopback or link-local, even for a private upstream.
    await refusedMessage(lookup(onprem.p, 'localhost'));
    await refusedMessage(onprem.p.checkHost('169.254.169.254'));
  });

  it("the upstream's own resolution is remembered, not repeated for every target", async () => {
    const { p, dns } = policy([], 'onprem.example');
    await lookup(p, 'store.lan');
    await lookup(p, 'store.lan');
    await p.checkHost('10.1.1.1');
    expect(dns.calls.filter((c) => c === 'onprem.example')).toHaveLength(1);
  });

  it('allowedHosts: names, addresses and CIDRs override the policy, and only for what they name', async () => {
    const { p } = policy(['allowed.internal', '127.0.0.1', '10.0.0.0/8', '::1', 'Metadata.Example.']);
    expect(await lookup(p, 'allowed.internal')).toEqual(['127.0.0.1']);
    await p.checkHost('127.0.0.1');
    await p.checkHost('[::1]');
    await p.checkHost('10.200.0.1');
    expect(await lookup(p, 'store.lan')).toEqual(['10.0.0.9']);
    // A listed name is trusted whatever it resolves to; case and a trailing dot do not matter.
    expect(await lookup(p, 'METADATA.example')).toEqual(['169.254.169.254']);
    await refusedMessage(p.checkHost('127.0.0.2'));
    await refusedMessage(p.checkHost('169.254.169.254'));
    // localhost resolves to 127.0.0.1 (listed) and ::1 (listed): allowed by address.
    expect(await lookup(p, 'localhost', { all: true })).toEqual(['127.0.0.1', '::1']);
  });
});

describe('the policy runs in the connection itself (no gap between check and connect)', () => {
  let server: Server;
  let port: number;
  let hits = 0;
  beforeAll(async () => {
    server = createServer((_req, res) => { hits++; res.end('trap'); });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const get = async (allowed: string[]): Promise<string> => {
    // 'rebind.test' exists only in this resolver: a connection can only reach the server through the policy's lookup.
    const dns = fakeDns({ 'rebind.test': ['127.0.0.1'], 'registry.example': ['203.0.113.10'] });
    const p = new AddressPolicy(allowed, 'registry.example', 'upstreams.test', dns.resolve);
    const agent = new Agent({ connect: { lookup: p.lookup, timeout: 5_000 } });
    try {
      const res = await agent.request({ origin: `http://rebind.test:${port}`, path: '/', method: 'GET' });
      return await res.body.text();
    } finally {
      await agent.close();
    }
  };

  it('a name resolving to loopback is refused by the connect and never reaches the server', async () => {
    hits = 0;
    const err = await get([]).then(() => undefined, (e: unknown) => e);
    expect(refusal(err), String(err)).toBeInstanceOf(AddressRefusedError);
    expect(refusal(err)!.message).toContain('rebind.test (127.0.0.1) is a loopback address');
    expect(hits).toBe(0);
  });

  it('allow-listed, the same request connects to the address that was checked', async () => {
    hits = 0;
    expect(await get(['127.0.0.0/8'])).toBe('trap');
    expect(hits).toBe(1);
  });
});

describe('credentials to a token realm', () => {
  it.each<[string, string, boolean]>([
    ['https://auth.example/token', 'https://registry.example', true],
    ['https://auth.example/token', 'http://registry.example', true],
    ['http://registry.example:5001/token', 'http://registry.example:5000', true],
    ['http://registry.example/token', 'https://registry.example', false],
    ['http://auth.example/token', 'https://registry.example', false],
    ['http://auth.example/token', 'http://registry.example', false],
  ])('realm %s for upstream %s: sent %s', (realm, upstream, sent) => {
    expect(credentialsAllowedFor(new URL(realm), new URL(upstream))).toBe(sent);
  });
});

describe('config', () => {
  const cfg = (u: Record<string, unknown>, timeouts: Record<string, unknown> = {}) =>
    validateConfig({ upstreams: { 'r.example': { url: 'https://r.example', ...u } }, upstreamTimeouts: timeouts });

  it('allowedHosts takes host names, addresses and CIDRs; defaults to none', () => {
    expect(cfg({}).upstreams[0]!.allowedHosts).toEqual([]);
    expect(cfg({ allowedHosts: ['store.lan', '127.0.0.1', '10.0.0.0/8', '::1', 'fd00::/8'] }).upstreams[0]!.allowedHosts)
      .toEqual(['store.lan', '127.0.0.1', '10.0.0.0/8', '::1', 'fd00::/8']);
  });

  it.each([[['http://x']], [['10.0.0.0/40']], [['a b']], [[7]], ['store.lan'], [['host:5000']]])('allowedHosts %j is refused naming the key', (v) => {
    expect(() => cfg({ allowedHosts: v })).toThrow(/upstreams\.r\.example\.allowedHosts/);
  });

  it('upstreamTimeouts.manifestTotal defaults to 30 s and parses durations', () => {
    expect(cfg({}).upstreamTimeouts.manifestTotal).toBe(30_000);
    expect(cfg({}, { manifestTotal: '5s' }).upstreamTimeouts.manifestTotal).toBe(5_000);
    expect(() => cfg({}, { manifestTotal: 'soon' })).toThrow(/upstreamTimeouts\.manifestTotal/);
  });
});
