import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseConfigText } from '../../src/config/load.js';
import {
  basicAuthorization, endpointAuthority, EndpointError, mainEndpoint, mirrorEndpoints, parseEndpoint, withPort,
} from '../../src/generate/endpoints.js';
import { renderRegistriesYaml } from '../../src/generate/registries-yaml.js';
import { concatFiles, renderHostsToml } from '../../src/generate/hosts-toml.js';
import { containerdConfig } from '../../src/cli/containerd-config.js';
import type { CliIo } from '../../src/cli/args.js';

const BASE = `listen: 0.0.0.0:5000
defaultUpstream: docker.io
upstreams:
  docker.io:
    url: https://registry-1.docker.io
    port: 6000
  ghcr.io:
    url: https://ghcr.io
  myreg:5000:
    url: http://myreg:5000
    port: 6002
`;
const TLS = `${BASE}tls:\n  cert: /etc/regcache/tls.crt\n  key: /etc/regcache/tls.key\n`;

const cfg = (text = BASE) => parseConfigText(text, {});

interface RegistriesYaml {
  mirrors: Record<string, { endpoint: string[] }>;
  configs?: Record<string, { tls?: { ca_file?: string; insecure_skip_verify?: boolean }; auth?: { username: string; password: string } }>;
}
const parseReg = (s: string) => parse(s, { strict: true, uniqueKeys: true }) as RegistriesYaml;

describe('endpoints', () => {
  it('defaults to host.k3d.internal on the listen port, https with tls', () => {
    expect(mainEndpoint(cfg())).toBe('http://host.k3d.internal:5000');
    expect(mainEndpoint(cfg(TLS))).toBe('https://host.k3d.internal:5000');
    expect(mainEndpoint(cfg(), { endpointHost: '172.18.0.1' })).toBe('http://172.18.0.1:5000');
    expect(mainEndpoint(cfg(), { endpoint: 'http://10.0.0.5:7000/' })).toBe('http://10.0.0.5:7000');
  });

  it('accepts only an http(s) origin', () => {
    expect(parseEndpoint('https://regcache.lan:8443')).toBe('https://regcache.lan:8443');
    expect(parseEndpoint('HTTP://Host.K3d.Internal:5000/')).toBe('http://host.k3d.internal:5000');
    for (const bad of ['host.k3d.internal:5000', 'ftp://x:1', 'http://x:1/v2', 'http://x:1/?a=b', 'http://u:p@x:1', 'http://x:1#f', 'not a url']) {
      expect(() => parseEndpoint(bad), bad).toThrow(EndpointError);
    }
  });

  it('moves an endpoint to another port and names its authority', () => {
    expect(withPort('http://host.k3d.internal:5000', 6001)).toBe('http://host.k3d.internal:6001');
    expect(endpointAuthority('https://host.k3d.internal:5000')).toBe('host.k3d.internal:5000');
  });

  it('computes one entry per upstream, in config order', () => {
    const ns = mirrorEndpoints(cfg());
    expect(ns.map((e) => [e.host, e.endpoint, e.routing, e.fallback])).toEqual([
      ['docker.io', 'http://host.k3d.internal:5000', 'ns', false],
      ['ghcr.io', 'http://host.k3d.internal:5000', 'ns', false],
      ['myreg:5000', 'http://host.k3d.internal:5000', 'ns', false],
    ]);
    const ports = mirrorEndpoints(cfg(), { mode: 'ports' });
    expect(ports.map((e) => [e.host, e.upstreamUrl, e.port, e.endpoint, e.routing, e.fallback, e.isDefault])).toEqual([
      ['docker.io', 'https://registry-1.docker.io', 6000, 'http://host.k3d.internal:6000', 'port', false, true],
      ['ghcr.io', 'https://ghcr.io', undefined, 'http://host.k3d.internal:5000', 'ns', true, false],
      ['myreg:5000', 'http://myreg:5000', 6002, 'http://host.k3d.internal:6002', 'port', false, false],
    ]);
  });

  it('builds a Basic authorization value', () => {
    expect(basicAuthorization('u', 'p')).toBe('Basic dTpw');
  });
});

describe('renderRegistriesYaml', () => {
  it('ns mode: every host points at the main endpoint, schemes written out, no configs', () => {
    const text = renderRegistriesYaml(cfg());
    const reg = parseReg(text);
    expect(reg.mirrors).toEqual({
      'docker.io': { endpoint: ['http://host.k3d.internal:5000'] },
      'ghcr.io': { endpoint: ['http://host.k3d.internal:5000'] },
      'myreg:5000': { endpoint: ['http://host.k3d.internal:5000'] },
    });
    expect(reg.configs).toBeUndefined();
    expect(text).toContain('  "myreg:5000":\n');
  });

  it('ports mode: a host with a port uses it, one without falls back to the main endpoint', () => {
    const text = renderRegistriesYaml(cfg(), { mode: 'ports' });
    const reg = parseReg(text);
    expect(reg.mirrors['docker.io']!.endpoint).toEqual(['http://host.k3d.internal:6000']);
    expect(reg.mirrors['ghcr.io']!.endpoint).toEqual(['http://host.k3d.internal:5000']);
    expect(reg.mirrors['myreg:5000']!.endpoint).toEqual(['http://host.k3d.internal:6002']);
    expect(text).toContain('# ghcr.io has no port');
  });

  it('--default adds a quoted "*" mirror on the main endpoint', () => {
    const text = renderRegistriesYaml(cfg(), { mode: 'ports', includeDefault: true, endpoint: 'http://172.17.0.1:5000' });
    expect(text).toContain('  "*":\n');
    const reg = parseReg(text);
    expect(reg.mirrors['*']).toEqual({ endpoint: ['http://172.17.0.1:5000'] });
    expect(reg.mirrors['docker.io']!.endpoint).toEqual(['http://172.17.0.1:6000']);
    expect(Object.keys(reg.mirrors)).toEqual(['docker.io', 'ghcr.io', 'myreg:5000', '*']);
  });

  it('tls with ca_file and auth: one configs entry per endpoint used', () => {
    const password = 'p@ss "w0rd" \\ #x: y';
    const reg = parseReg(renderRegistriesYaml(cfg(TLS), { mode: 'ports', caFile: '/etc/ssl/regcache-ca.pem', auth: { username: 'node', password } }));
    expect(reg.mirrors['docker.io']!.endpoint).toEqual(['https://host.k3d.internal:6000']);
    const entry = { tls: { ca_file: '/etc/ssl/regcache-ca.pem' }, auth: { username: 'node', password } };
    expect(reg.configs).toEqual({
      'host.k3d.internal:6000': entry,
      'host.k3d.internal:5000': entry,
      'host.k3d.internal:6002': entry,
    });
  });

  it('insecure_skip_verify for an https endpoint; no tls section for plain http', () => {
    const reg = parseReg(renderRegistriesYaml(cfg(), { endpoint: 'https://regcache.lan', insecureSkipVerify: true }));
    expect(reg.configs).toEqual({ 'regcache.lan': { tls: { insecure_skip_verify: true } } });
    const plain = parseReg(renderRegistriesYaml(cfg(), { auth: { username: 'u', password: 'p' } }));
    expect(plain.configs).toEqual({ 'host.k3d.internal:5000': { auth: { username: 'u', password: 'p' } } });
  });

  it('no upstreams: an empty mirrors map, still valid YAML', () => {
    const reg = parseReg(renderRegistriesYaml(cfg('listen: 0.0.0.0:5000\n')));
    expect(reg.mirrors).toEqual({});
  });
});

describe('renderHostsToml', () => {
  it('writes the exact hosts.toml for docker.io in ns mode', () => {
    const files = renderHostsToml(cfg());
    expect(files.map((f) => f.path)).toEqual(['docker.io/hosts.toml', 'ghcr.io/hosts.toml', 'myreg:5000/hosts.toml']);
    expect(files[0]!.content).toBe(
      'server = "https://registry-1.docker.io"\n' +
      '\n' +
      '[host."http://host.k3d.internal:5000"]\n' +
      '  capabilities = ["pull", "resolve"]\n',
    );
    expect(files[2]!.content).toContain('server = "http://myreg:5000"\n');
  });

  it('ports mode, TLS options, auth header and _default', () => {
    const files = renderHostsToml(cfg(TLS), { mode: 'ports', includeDefault: true, insecureSkipVerify: true, auth: { username: 'u', password: 'p' } });
    expect(files.map((f) => f.path)).toEqual(['docker.io/hosts.toml', 'ghcr.io/hosts.toml', 'myreg:5000/hosts.toml', '_default/hosts.toml']);
    expect(files[0]!.content).toBe(
      'server = "https://registry-1.docker.io"\n' +
      '\n' +
      '[host."https://host.k3d.internal:6000"]\n' +
      '  capabilities = ["pull", "resolve"]\n' +
      '  skip_verify = true\n' +
      '\n' +
      '[host."https://host.k3d.internal:6000".header]\n' +
      '  Authorization = "Basic dTpw"\n',
    );
    expect(files[1]!.content.startsWith('# ghcr.io has no port')).toBe(true);
    expect(files[1]!.content).toContain('[host."https://host.k3d.internal:5000"]');
    expect(files[3]!.content).not.toContain('server');
    expect(files[3]!.content.startsWith('[host."https://host.k3d.internal:5000"]\n')).toBe(true);
  });

  it('escapes strings as TOML basic strings', () => {
    const [f] = renderHostsToml(cfg(), { caFile: 'C:\\certs\\"ca".pem' });
    expect(f!.content).toContain('  ca = "C:\\\\certs\\\\\\"ca\\".pem"\n');
  });

  it('concatenates files behind "# <path>" lines', () => {
    const text = concatFiles([{ path: 'a/hosts.toml', content: 'x = 1\n' }, { path: 'b/hosts.toml', content: 'y = 2\n' }]);
    expect(text).toBe('# a/hosts.toml\nx = 1\n\n# b/hosts.toml\ny = 2\n');
  });
});

describe('regcache containerd-config', () => {
  let dir: string;
  let out: string[];
  let err: string[];
  let io: CliIo;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'regcache-gen-'));
    writeFileSync(join(dir, 'regcache.yaml'), BASE);
    out = [];
    err = [];
    io = { stdout: (s) => out.push(s), stderr: (s) => err.push(s), env: { REGCACHE_CONFIG: join(dir, 'regcache.yaml') } };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('prints registries.yaml with --default and --endpoint', async () => {
    expect(await containerdConfig(['--format', 'registries.yaml', '--endpoint', 'http://host.k3d.internal:5000', '--default'], io)).toBe(0);
    const reg = parseReg(out.join(''));
    expect(Object.keys(reg.mirrors)).toEqual(['docker.io', 'ghcr.io', 'myreg:5000', '*']);
  });

  it('prints hosts.toml files to stdout without --out', async () => {
    expect(await containerdConfig(['--format', 'hosts.toml'], io)).toBe(0);
    const text = out.join('');
    expect(text.startsWith('# docker.io/hosts.toml\nserver = "https://registry-1.docker.io"\n')).toBe(true);
    expect(text).toContain('\n# myreg:5000/hosts.toml\n');
  });

  it('writes the certs.d tree with --out; credentials from the file, mode 0600, never on stderr', async () => {
    writeFileSync(join(dir, 'pw'), 's3cret\n');
    const certs = join(dir, 'certs.d');
    const rc = await containerdConfig(['--format', 'hosts.toml', '--out', certs, '--default', '--mode', 'ports',
      '--username', 'node', '--password-file', join(dir, 'pw')], io);
    expect(rc).toBe(0);
    expect(readdirSync(certs).sort()).toEqual(['_default', 'docker.io', 'ghcr.io', 'myreg:5000']);
    const hub = readFileSync(join(certs, 'docker.io', 'hosts.toml'), 'utf8');
    expect(hub).toContain(`Authorization = "${basicAuthorization('node', 's3cret')}"`);
    expect(statSync(join(certs, 'docker.io', 'hosts.toml')).mode & 0o777).toBe(0o600);
    expect(readdirSync(join(certs, 'docker.io'))).toEqual(['hosts.toml']);
    expect(err.join('')).toMatch(/no port in .* for ghcr.io: in ports mode/);
    expect(err.join('') + out.join('')).not.toContain('s3cret');
  });

  it('puts the password, without its newline, into registries.yaml', async () => {
    writeFileSync(join(dir, 'pw'), 'top secret\r\n');
    expect(await containerdConfig(['--format', 'registries.yaml', '--username', 'node', '--password-file', join(dir, 'pw')], io)).toBe(0);
    expect(parseReg(out.join('')).configs?.['host.k3d.internal:5000']?.auth).toEqual({ username: 'node', password: 'top secret' });
    expect(err.join('')).not.toContain('top secret');
  });

  it('rejects bad flags with UsageError', async () => {
    const cases: string[][] = [
      [],
      ['--format', 'json'],
      ['--format', 'hosts.toml', '--mode', 'path'],
      ['--format', 'registries.yaml', '--out', dir],
      ['--format', 'registries.yaml', '--endpoint', 'http://x:5000/v2'],
      ['--format', 'registries.yaml', '--username', 'u'],
      ['--format', 'registries.yaml', '--ca-file', '/ca.pem'],
      ['--format', 'registries.yaml', '--endpoint', 'https://x', '--ca-file', '/ca.pem', '--insecure-skip-verify'],
      ['--format', 'registries.yaml', '--username', 'u', '--password-file', join(dir, 'missing')],
    ];
    for (const argv of cases) await expect(containerdConfig(argv, io), argv.join(' ')).rejects.toThrow(/./);
    for (const argv of cases) await expect(containerdConfig(argv, io)).rejects.toHaveProperty('name', 'UsageError');
  });

  it('reports an invalid config on stderr', async () => {
    writeFileSync(join(dir, 'regcache.yaml'), 'upstreams: [\n');
    expect(await containerdConfig(['--format', 'registries.yaml'], io)).toBe(1);
    expect(err.join('')).toMatch(/malformed YAML/);
  });

  it('prints usage for --help', async () => {
    expect(await containerdConfig(['--help'], io)).toBe(0);
    expect(out.join('')).toMatch(/^usage: regcache containerd-config/);
  });
});

describe("regcache's own registry names (hosted.names)", () => {
  const OWN = `${BASE}hosted:\n  names: ["regcache.local:5000"]\nhostedRepositories:\n  "team/**": {}\n`;

  it('hosts.toml: regcache is server and host, with push', () => {
    const files = renderHostsToml(cfg(OWN), { mode: 'ports' });
    const own = files.find((f) => f.path === 'regcache.local:5000/hosts.toml')!;
    expect(own.content).toBe(
      '# regcache.local:5000 is regcache itself (hosted.names): pushes and pulls of hosted repositories\n' +
      'server = "http://host.k3d.internal:5000"\n' +
      '\n' +
      '[host."http://host.k3d.internal:5000"]\n' +
      '  capabilities = ["pull", "resolve", "push"]\n',
    );
    // Upstream mirrors never get push.
    expect(files.filter((f) => f !== own).every((f) => !f.content.includes('"push"'))).toBe(true);
  });

  it('registries.yaml: a mirror entry on the main endpoint, in both modes', () => {
    for (const mode of ['ns', 'ports'] as const) {
      const reg = parseReg(renderRegistriesYaml(cfg(OWN), { mode }));
      expect(reg.mirrors['regcache.local:5000']).toEqual({ endpoint: ['http://host.k3d.internal:5000'] });
    }
  });
});
