import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseConfigText } from '../../src/config/load.js';
import {
  addUpstream, defaultUpstreamUrl, EditError, FIRST_MIRROR_PORT, heldPorts, nextFreePort, planAdd, planRemove,
  removeUpstream, writeFileAtomic,
} from '../../src/config/edit.js';
import { mirrorCommand } from '../../src/cli/mirror.js';
import type { CliIo } from '../../src/cli/args.js';

const SAMPLE = `# regcache test configuration
listen: 0.0.0.0:5000
dataDir: ./data

cache:
  tagTTL: 5m               # aligned comment

defaultUpstream: docker.io # requests with no ?ns= go here

upstreams:
  # Docker Hub serves its API elsewhere
  docker.io:
    url: https://registry-1.docker.io
    port: 6000
  # GitHub
  ghcr.io:
    url: https://ghcr.io   # no port: ns routing only
    # username: someone
  quay.io:
    url: https://quay.io
    port: 6001

retention:
  maxAge: 168h             # content not pulled for this long is removed
`;

const cfg = (text: string) => parseConfigText(text, {});
// Every port counts as free on this machine, so results do not depend on what else runs here
// (mirror-ports.test.ts checks the real probe).
const mirror = mirrorCommand(async () => true);
const data = (text: string) => parse(text) as Record<string, unknown>;

describe('port allocation', () => {
  it('starts at 6000', () => {
    expect(FIRST_MIRROR_PORT).toBe(6000);
    expect(nextFreePort(cfg('listen: 0.0.0.0:5000\n'))).toBe(6000);
  });

  it('skips ports other upstreams hold', () => {
    expect(nextFreePort(cfg(SAMPLE))).toBe(6002);
    const gap = 'upstreams:\n  a.io: {url: https://a.io, port: 6000}\n  b.io: {url: https://b.io, port: 6002}\n';
    expect(nextFreePort(cfg(gap))).toBe(6001);
  });

  it('skips the main listen port and the metrics port', () => {
    expect(nextFreePort(cfg('listen: 0.0.0.0:6000\n'))).toBe(6001);
    expect(nextFreePort(cfg('listen: 6000\nmetrics:\n  listen: 127.0.0.1:6001\nupstreams:\n  a.io: {url: https://a.io, port: 6002}\n'))).toBe(6003);
    expect([...heldPorts(cfg('listen: 0.0.0.0:6000\nmetrics: {listen: ":9090"}\n')).keys()].sort()).toEqual([6000, 9090]);
  });
});

describe('addUpstream (text)', () => {
  it('appends the entry and leaves every other byte as it was', () => {
    const out = addUpstream(SAMPLE, { host: 'gcr.io', url: 'https://gcr.io', port: 6002 });
    const at = SAMPLE.indexOf('\nretention:');
    expect(out).toBe(SAMPLE.slice(0, at) + '  gcr.io:\n    url: https://gcr.io\n    port: 6002\n' + SAMPLE.slice(at));
    expect(Object.keys(data(out).upstreams as object)).toEqual(['docker.io', 'ghcr.io', 'quay.io', 'gcr.io']);
    expect(Object.keys(data(out))).toEqual(Object.keys(data(SAMPLE)));
  });

  it('quotes a host with a port and follows the file indentation', () => {
    const text = 'upstreams:\n    a.io:\n        url: https://a.io\n';
    expect(addUpstream(text, { host: 'myreg:5000', url: 'http://myreg:5000', port: 6001 })).toBe(
      text + '    "myreg:5000":\n        url: http://myreg:5000\n        port: 6001\n',
    );
  });

  it('creates upstreams when the key is missing, or fills an empty one', () => {
    expect(addUpstream('listen: 0.0.0.0:5000 # main\n', { host: 'a.io', url: 'https://a.io' })).toBe(
      'listen: 0.0.0.0:5000 # main\nupstreams:\n  a.io:\n    url: https://a.io\n',
    );
    expect(addUpstream('listen: 0.0.0.0:5000', { host: 'a.io', url: 'https://a.io' })).toBe(
      'listen: 0.0.0.0:5000\nupstreams:\n  a.io:\n    url: https://a.io\n',
    );
    expect(addUpstream('upstreams:   # none yet\nlisten: 0.0.0.0:5000\n', { host: 'a.io', url: 'https://a.io', port: 6000 })).toBe(
      'upstreams:   # none yet\n  a.io:\n    url: https://a.io\n    port: 6000\nlisten: 0.0.0.0:5000\n',
    );
    expect(data(addUpstream('', { host: 'a.io', url: 'https://a.io' }))).toEqual({ upstreams: { 'a.io': { url: 'https://a.io' } } });
    for (const empty of ['upstreams: ~\n', 'upstreams: {}\n', 'upstreams: null # none\n']) {
      const out = addUpstream(empty, { host: 'a.io', url: 'https://a.io', port: 6000 });
      expect(data(out), empty).toEqual({ upstreams: { 'a.io': { url: 'https://a.io', port: 6000 } } });
      expect(cfg(out).upstreams).toHaveLength(1);
    }
  });

  it('falls back to the Document API for flow mappings, keeping comments', () => {
    const out = addUpstream('# head\nupstreams: {a.io: {url: "https://a.io"}} # flow\n', { host: 'b.io', url: 'https://b.io', port: 6000 });
    expect(out).toContain('# head');
    expect(out).toContain('# flow');
    expect(data(out).upstreams).toEqual({ 'a.io': { url: 'https://a.io' }, 'b.io': { url: 'https://b.io', port: 6000 } });
  });

  it('keeps CRLF line endings', () => {
    const out = addUpstream('upstreams:\r\n  a.io:\r\n    url: x\r\n', { host: 'b.io', url: 'https://b.io' });
    expect(out).toBe('upstreams:\r\n  a.io:\r\n    url: x\r\n  b.io:\r\n    url: https://b.io\r\n');
  });

  it('refuses a host that exists, a bad host or URL, and malformed YAML', () => {
    expect(() => addUpstream(SAMPLE, { host: 'ghcr.io', url: 'https://ghcr.io' })).toThrow(/already exists/);
    for (const host of ['GHCR.io', 'ghcr.io/x', 'a..b', 'host:99999', '', 'https://ghcr.io']) {
      expect(() => addUpstream(SAMPLE, { host, url: 'https://x' }), host).toThrow(EditError);
    }
    for (const url of ['ftp://x', 'https://u:p@x', 'x.io', 'https://x?y=1']) {
      expect(() => addUpstream(SAMPLE, { host: 'x.io', url }), url).toThrow(EditError);
    }
    expect(() => addUpstream('upstreams: [\n', { host: 'x.io', url: 'https://x.io' })).toThrow(/malformed YAML/);
  });
});

describe('removeUpstream (text)', () => {
  it('removes the entry with its own comments and keeps all others', () => {
    const out = removeUpstream(SAMPLE, 'ghcr.io');
    expect(out).toBe(SAMPLE.replace('  # GitHub\n  ghcr.io:\n    url: https://ghcr.io   # no port: ns routing only\n    # username: someone\n', ''));
    expect(Object.keys(data(out).upstreams as object)).toEqual(['docker.io', 'quay.io']);
  });

  it('keeps a comment heading the first entry', () => {
    const out = removeUpstream(SAMPLE, 'docker.io');
    expect(out).toContain('upstreams:\n  # Docker Hub serves its API elsewhere\n  # GitHub\n  ghcr.io:');
  });

  it('removing the last entry leaves a valid, empty upstreams', () => {
    const out = removeUpstream('upstreams:\n  a.io:\n    url: https://a.io\nlisten: 0.0.0.0:5000\n', 'a.io');
    expect(out).toBe('upstreams:\nlisten: 0.0.0.0:5000\n');
    expect(cfg(out).upstreams).toEqual([]);
  });

  it('add then remove gives back the original text', () => {
    const added = addUpstream(SAMPLE, { host: 'gcr.io', url: 'https://gcr.io', port: 6002 });
    expect(removeUpstream(added, 'gcr.io')).toBe(SAMPLE);
  });

  it('refuses an unknown host', () => {
    expect(() => removeUpstream(SAMPLE, 'gcr.io')).toThrow(/not configured/);
  });
});

describe('planAdd / planRemove (validated)', () => {
  it('fills in the real URL of known registries and https://HOST otherwise', () => {
    expect(defaultUpstreamUrl('docker.io')).toBe('https://registry-1.docker.io');
    for (const h of ['ghcr.io', 'quay.io', 'registry.k8s.io', 'gcr.io', 'mcr.microsoft.com', 'public.ecr.aws']) expect(defaultUpstreamUrl(h)).toBe(`https://${h}`);
    expect(defaultUpstreamUrl('registry.example.com:5000')).toBe('https://registry.example.com:5000');
    const plan = planAdd(SAMPLE, {}, { host: 'mcr.microsoft.com' });
    expect(plan.upstream).toMatchObject({ host: 'mcr.microsoft.com', url: 'https://mcr.microsoft.com', port: 6002 });
    expect(plan.config.upstreams.map((u) => u.host)).toEqual(['docker.io', 'ghcr.io', 'quay.io', 'mcr.microsoft.com']);
  });

  it('the vkdr layout: docker.io 6000, gcr.io 6001, quay.io 6002', () => {
    let text = 'listen: 0.0.0.0:5000\n';
    for (const host of ['docker.io', 'gcr.io', 'quay.io']) text = planAdd(text, {}, { host }).text;
    expect(cfg(text).upstreams.map((u) => [u.host, u.url, u.port])).toEqual([
      ['docker.io', 'https://registry-1.docker.io', 6000],
      ['gcr.io', 'https://gcr.io', 6001],
      ['quay.io', 'https://quay.io', 6002],
    ]);
  });

  it('takes an explicit port or none, and refuses a held one', () => {
    expect(planAdd(SAMPLE, {}, { host: 'gcr.io', port: 7000 }).upstream.port).toBe(7000);
    expect(planAdd(SAMPLE, {}, { host: 'gcr.io', noPort: true }).upstream.port).toBeUndefined();
    expect(() => planAdd(SAMPLE, {}, { host: 'gcr.io', port: 6001 })).toThrow(/port 6001 is already used by upstream quay.io/);
    expect(() => planAdd(SAMPLE, {}, { host: 'gcr.io', port: 5000 })).toThrow(/main listener/);
    expect(() => planAdd(SAMPLE, {}, { host: 'gcr.io', port: 70000 })).toThrow(/invalid port/);
  });

  it('says a host already exists', () => {
    expect(() => planAdd(SAMPLE, {}, { host: 'quay.io' }, 'cfg.yaml')).toThrow(/upstream quay.io already exists in cfg.yaml \(https:\/\/quay.io, port 6001\)/);
  });

  it('validates with env expanded but never writes the expansion', () => {
    const text = 'upstreams:\n  a.io:\n    url: https://a.io\n    username: bot\n    password: ${A_PASS}\n';
    const plan = planAdd(text, { A_PASS: 'hunter2' }, { host: 'b.io' });
    expect(plan.text).toContain('password: ${A_PASS}');
    expect(plan.text).not.toContain('hunter2');
    expect(() => planAdd(text, {}, { host: 'b.io' })).toThrow(/not a valid config.*A_PASS is not set/);
  });

  it('refuses to edit an invalid config', () => {
    expect(() => planAdd('listen: nope\n', {}, { host: 'a.io' })).toThrow(/not a valid config, so it was left unchanged: listen/);
    expect(() => planAdd('upstreams: [\n', {}, { host: 'a.io' })).toThrow(/malformed YAML/);
  });

  it('refuses to remove the defaultUpstream, or an unknown host', () => {
    expect(() => planRemove(SAMPLE, {}, 'docker.io', 'cfg.yaml')).toThrow(/docker.io is the defaultUpstream in cfg.yaml; set defaultUpstream/);
    expect(() => planRemove(SAMPLE, {}, 'gcr.io', 'cfg.yaml')).toThrow(/gcr.io is not configured in cfg.yaml \(configured: docker.io, ghcr.io, quay.io\)/);
    const plan = planRemove(SAMPLE, {}, 'quay.io');
    expect(plan.upstream.port).toBe(6001);
    expect(plan.config.upstreams.map((u) => u.host)).toEqual(['docker.io', 'ghcr.io']);
  });
});

describe('writeFileAtomic', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'regcache-atomic-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('replaces the file, keeps its mode and leaves no temp file', () => {
    const f = join(dir, 'regcache.yaml');
    writeFileSync(f, 'old\n');
    chmodSync(f, 0o600);
    writeFileAtomic(f, 'new\n');
    expect(readFileSync(f, 'utf8')).toBe('new\n');
    expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['regcache.yaml']);
  });

  it('writes through a symlink, keeping the link', () => {
    const real = join(dir, 'real.yaml');
    writeFileSync(real, 'old\n');
    symlinkSync(real, join(dir, 'link.yaml'));
    writeFileAtomic(join(dir, 'link.yaml'), 'new\n');
    expect(readFileSync(real, 'utf8')).toBe('new\n');
    expect(readdirSync(dir).sort()).toEqual(['link.yaml', 'real.yaml']);
  });

  it('cleans up when the rename fails', () => {
    // A non-empty directory cannot be replaced by a file.
    const target = join(dir, 'adir');
    mkdirSync(join(target, 'child'), { recursive: true });
    expect(() => writeFileAtomic(target, 'x')).toThrow();
    expect(readdirSync(dir)).toEqual(['adir']);
  });
});

describe('regcache mirror', () => {
  let dir: string;
  let file: string;
  let out: string[];
  let err: string[];
  let io: CliIo;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'regcache-mirror-'));
    file = join(dir, 'regcache.yaml');
    writeFileSync(file, SAMPLE);
    out = [];
    err = [];
    io = { stdout: (s) => out.push(s), stderr: (s) => err.push(s), env: {} };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('list: host, upstream, port, endpoint and routing', async () => {
    expect(await mirror(['list', '--config', file], io)).toBe(0);
    expect(out.join('')).toBe(
      'HOST                 UPSTREAM                      PORT  ENDPOINT                       ROUTING\n' +
      'docker.io (default)  https://registry-1.docker.io  6000  http://host.k3d.internal:6000  port\n' +
      'ghcr.io              https://ghcr.io               -     http://host.k3d.internal:5000  ns\n' +
      'quay.io              https://quay.io               6001  http://host.k3d.internal:6001  port\n',
    );
    out.length = 0;
    expect(await mirror(['list', '--config', file, '--endpoint-host', '172.18.0.1'], io)).toBe(0);
    expect(out.join('')).toContain('http://172.18.0.1:6001');
  });

  it('add writes the file atomically, keeps comments, leaves no temp file', async () => {
    expect(await mirror(['add', '--host', 'gcr.io', '--config', file], io)).toBe(0);
    const text = readFileSync(file, 'utf8');
    expect(text).toBe(addUpstream(SAMPLE, { host: 'gcr.io', url: 'https://gcr.io', port: 6002 }));
    expect(text).toContain('tagTTL: 5m               # aligned comment');
    expect(readdirSync(dir)).toEqual(['regcache.yaml']);
    expect(out.join('')).toMatch(/added gcr.io -> https:\/\/gcr.io, port 6002/);
  });

  it('add of an existing host fails and says so; the file is unchanged', async () => {
    expect(await mirror(['add', '--host', 'quay.io', '--config', file], io)).toBe(1);
    expect(err.join('')).toMatch(/upstream quay.io already exists/);
    expect(readFileSync(file, 'utf8')).toBe(SAMPLE);
  });

  it('a malformed config is reported, never overwritten', async () => {
    const bad = SAMPLE + 'upstreams:\n  broken: [\n';
    writeFileSync(file, bad);
    expect(await mirror(['add', '--host', 'gcr.io', '--config', file], io)).toBe(1);
    expect(err.join('')).toMatch(/left unchanged/);
    expect(readFileSync(file, 'utf8')).toBe(bad);
    const invalid = SAMPLE.replace('listen: 0.0.0.0:5000', 'listen: everywhere');
    writeFileSync(file, invalid);
    expect(await mirror(['remove', '--host', 'quay.io', '--config', file], io)).toBe(1);
    expect(readFileSync(file, 'utf8')).toBe(invalid);
    expect(readdirSync(dir)).toEqual(['regcache.yaml']);
  });

  it('add to a missing config file is an error', async () => {
    expect(await mirror(['add', '--host', 'gcr.io', '--config', join(dir, 'nope.yaml')], io)).toBe(1);
    expect(err.join('')).toMatch(/nope.yaml does not exist/);
    expect(existsSync(join(dir, 'nope.yaml'))).toBe(false);
  });

  it('remove: unknown host and defaultUpstream are errors; a known host goes', async () => {
    expect(await mirror(['remove', '--host', 'gcr.io', '--config', file], io)).toBe(1);
    expect(await mirror(['remove', '--host', 'docker.io', '--config', file], io)).toBe(1);
    expect(err.join('')).toMatch(/defaultUpstream/);
    expect(readFileSync(file, 'utf8')).toBe(SAMPLE);
    expect(await mirror(['remove', '--host', 'ghcr.io', '--config', file], io)).toBe(0);
    expect(Object.keys(data(readFileSync(file, 'utf8')).upstreams as object)).toEqual(['docker.io', 'quay.io']);
    expect(out.join('')).toMatch(/cached content stays/);
  });

  it('uses REGCACHE_CONFIG, takes the host as a positional, rejects bad flags', async () => {
    io.env = { REGCACHE_CONFIG: file };
    expect(await mirror(['add', 'registry.example.com:5000', '--port', '7000'], io)).toBe(0);
    expect(cfg(readFileSync(file, 'utf8')).upstreams.at(-1)).toMatchObject({ host: 'registry.example.com:5000', url: 'https://registry.example.com:5000', port: 7000 });
    await expect(mirror(['add'], io)).rejects.toHaveProperty('name', 'UsageError');
    await expect(mirror(['add', '--host', 'a.io', '--port', 'x'], io)).rejects.toHaveProperty('name', 'UsageError');
    await expect(mirror(['frob'], io)).rejects.toHaveProperty('name', 'UsageError');
    await expect(mirror([], io)).rejects.toHaveProperty('name', 'UsageError');
  });

  it('--help prints usage', async () => {
    expect(await mirror(['--help'], io)).toBe(0);
    expect(await mirror(['add', '--help'], io)).toBe(0);
    expect(out.join('')).toMatch(/^usage: regcache mirror/);
  });
});
