import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mirror } from '../../src/cli/mirror.js';
import type { CliIo } from '../../src/cli/args.js';
import { checkRegistryHost, checkUpstreamUrl, planAddOnHost } from '../../src/config/edit.js';
import { portIsFree } from '../../src/config/port-probe.js';
import { validateConfig } from '../../src/config/validate.js';

const CONFIG = 'listen: 127.0.0.1:5000\nupstreams:\n  a.io:\n    url: https://a.io\n    port: 6001\n';

/** A probe that reports `busy` as held by other processes and records what it was asked. */
function fakeProbe(busy: number[]) {
  const asked: string[] = [];
  const probe = async (host: string, port: number) => {
    asked.push(`${host}:${port}`);
    return !busy.includes(port);
  };
  return { probe, asked };
}

describe('mirror add: ports held by other processes', () => {
  it('allocation from 6000 skips ports the config holds and ports the OS holds, probing on listen\'s host', async () => {
    const { probe, asked } = fakeProbe([6000, 6002]);
    const plan = await planAddOnHost(CONFIG, {}, { host: 'b.io' }, 'cfg.yaml', probe);
    expect(plan.upstream.port).toBe(6003);
    expect(asked).toEqual(['127.0.0.1:6000', '127.0.0.1:6002', '127.0.0.1:6003']);
  });

  it('an explicit port held by another process is refused; a free one is taken', async () => {
    const { probe } = fakeProbe([7000]);
    await expect(planAddOnHost(CONFIG, {}, { host: 'b.io', port: 7000 }, 'cfg.yaml', probe)).rejects.toThrow(
      'port 7000 is already in use on 127.0.0.1 by another process; choose another --port, or omit --port to pick a free one',
    );
    expect((await planAddOnHost(CONFIG, {}, { host: 'b.io', port: 7001 }, 'cfg.yaml', probe)).upstream.port).toBe(7001);
  });

  it('--no-port probes nothing; a port the config holds is refused before any probe', async () => {
    const { probe, asked } = fakeProbe([]);
    expect((await planAddOnHost(CONFIG, {}, { host: 'b.io', noPort: true }, 'cfg.yaml', probe)).upstream.port).toBeUndefined();
    await expect(planAddOnHost(CONFIG, {}, { host: 'b.io', port: 5000 }, 'cfg.yaml', probe)).rejects.toThrow(/main listener/);
    expect(asked).toEqual([]);
  });

  it('gives up after a bounded number of probes', async () => {
    await expect(planAddOnHost(CONFIG, {}, { host: 'b.io' }, 'cfg.yaml', async () => false)).rejects.toThrow(/no bindable port .* pass --port/);
  });
});

describe('portIsFree and `regcache mirror add` with a real socket (loopback)', () => {
  let holder: Server;
  let held: number;
  let dir: string;
  beforeEach(async () => {
    holder = createServer();
    await new Promise<void>((r) => holder.listen({ host: '127.0.0.1', port: 0 }, r));
    held = (holder.address() as { port: number }).port;
    dir = mkdtempSync(join(tmpdir(), 'regcache-ports-'));
  });
  afterEach(async () => {
    await new Promise((r) => holder.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it('reports a held port as taken, and the same port as free once released', async () => {
    expect(await portIsFree('127.0.0.1', held)).toBe(false);
    await new Promise((r) => holder.close(r));
    expect(await portIsFree('127.0.0.1', held)).toBe(true);
    holder = createServer();
  });

  it('mirror add --port of a held port fails and leaves the file unchanged', async () => {
    const file = join(dir, 'regcache.yaml');
    writeFileSync(file, CONFIG);
    const err: string[] = [];
    const io: CliIo = { stdout: () => {}, stderr: (s) => err.push(s), env: {} };
    expect(await mirror(['add', '--host', 'b.io', '--port', String(held), '--config', file], io)).toBe(1);
    expect(err.join('')).toContain(`port ${held} is already in use on 127.0.0.1 by another process`);
    expect(readFileSync(file, 'utf8')).toBe(CONFIG);
  });
});

describe('mirror add and validation apply the same host and URL rules', () => {
  const accepts = (f: () => unknown) => { try { f(); return true; } catch { return false; } };

  it.each(['ghcr.io', 'myreg.local:5000', 'localhost', 'Ghcr.io', 'a_b.io', 'host:99999', '-a.io', 'a.io:0'])('host %s', (host) => {
    expect(accepts(() => checkRegistryHost(host))).toBe(accepts(() => validateConfig({ upstreams: { [host]: { url: 'https://x.io' } } })));
  });

  it.each([
    'https://a.io', 'http://127.0.0.1:5000/', 'https://a.io/prefix', 'https://a.io/v2/', 'https://a.io/v2',
    'ftp://a.io', 'https://u:p@a.io', 'https://a.io/?q=1', 'https://a.io/#f', 'nope',
  ])('url %s', (url) => {
    expect(accepts(() => checkUpstreamUrl(url))).toBe(accepts(() => validateConfig({ upstreams: { 'a.io': { url } } })));
  });

  it('mirror add refuses a /v2/ url with the same message as validation', async () => {
    await expect(planAddOnHost(CONFIG, {}, { host: 'b.io', url: 'https://b.io/v2/', noPort: true })).rejects.toThrow(
      /ends in \/v2: give the registry base URL \(https:\/\/b\.io\)/,
    );
  });
});
