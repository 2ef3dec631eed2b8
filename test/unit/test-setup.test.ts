/**
 * How the project installs, starts and tests (issue 15 items 10, 17, 18; issue 9's layers):
 * package.json scripts, the allowScripts entry, scripts/install-deps.sh, vitest projects.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import config from '../../vitest.config.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  scripts: Record<string, string>;
  allowScripts?: Record<string, boolean | string>;
};

describe('package.json scripts', () => {
  it('npm start leaves the config file to --config/REGCACHE_CONFIG/default (no hard-coded --config)', () => {
    expect(pkg.scripts.start).toBe('node --max-semi-space-size=2 dist/cli.js serve');
  });

  it('npm start, the bin\'s shebang and the Dockerfile run node with the same flags (docs/limits.md, "Memory")', () => {
    const flags = '--max-semi-space-size=2';
    expect(pkg.scripts.start).toContain(`node ${flags} `);
    expect(readFileSync(join(ROOT, 'src/cli.ts'), 'utf8').split('\n')[0]).toBe(`#!/usr/bin/env -S node ${flags}`);
    expect(readFileSync(join(ROOT, 'Dockerfile'), 'utf8')).toContain(`NODE_OPTIONS=${flags}`);
  });

  it('npm test installs missing system tools first (the script CI uses), then builds, then runs every layer', () => {
    expect(pkg.scripts.test).toBe('bash scripts/install-deps.sh && npm run build && vitest run');
    expect(pkg.scripts['test:integration']).toMatch(/^bash scripts\/install-deps\.sh && npm run build && vitest run --project integration$/);
    expect(pkg.scripts['test:unit']).toBe('vitest run --project unit');
    expect(pkg.scripts['test:component']).toMatch(/^vitest run --project component\b/);
  });

  it('allowScripts covers better-sqlite3, whose install script builds the native addon', () => {
    expect(pkg.allowScripts?.['better-sqlite3']).toBe(true);
  });
});

describe('vitest projects', () => {
  const projects = (config.test?.projects ?? []) as { test: { name: string; include: string[]; globalSetup?: string[] } }[];
  const byName = new Map(projects.map((p) => [p.test.name, p.test]));
  it('unit and component have no global setup (no system tools, no dist/); integration checks them', () => {
    expect([...byName.keys()]).toEqual(['unit', 'component', 'integration']);
    expect(byName.get('unit')!.globalSetup).toBeUndefined();
    expect(byName.get('component')!.globalSetup).toBeUndefined();
    expect(byName.get('integration')!.globalSetup).toEqual(['test/global-setup.ts']);
    expect(config.test?.globalSetup).toBeUndefined();
  });
  it('each test directory belongs to exactly one layer', () => {
    expect(byName.get('unit')!.include).toEqual(['test/unit/**/*.test.ts']);
    expect(byName.get('component')!.include).toEqual(['test/component/**/*.test.ts']);
    expect(byName.get('integration')!.include).toEqual(['test/integration/**/*.test.ts', 'test/helpers-selftest/**/*.test.ts']);
  });
});

describe('scripts/install-deps.sh', () => {
  // A PATH with only what the script itself needs: every test tool is "missing".
  const bin = mkdtempSync(join(tmpdir(), 'regcache-deps-bin-'));
  for (const tool of ['bash', 'sort', 'id']) symlinkSync(`/usr/bin/${tool}`, join(bin, tool));
  chmodSync(bin, 0o755); // readable by the unprivileged user below
  afterAll(() => rmSync(bin, { recursive: true, force: true }));
  const script = readFileSync(join(ROOT, 'scripts', 'install-deps.sh'), 'utf8');
  // The script is fed on stdin so an unprivileged user can run it whatever the checkout's permissions.
  const run = (args: string[], asNobody: boolean) => {
    const argv = ['bash', '-s', '--', ...args];
    const [cmd, ...rest] = asNobody && process.getuid?.() === 0
      ? ['/usr/bin/setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', ...argv]
      : argv;
    return spawnSync(cmd!, rest, { input: script, env: { PATH: bin }, encoding: 'utf8', timeout: 30_000 });
  };

  it('--check names the missing packages and installs nothing', () => {
    const r = run(['--check'], false);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('missing packages: ceph-base ceph-common ceph-mon ceph-osd chromium containerd docker-registry openssl podman postgresql prometheus radosgw skopeo');
    expect(r.stdout).not.toContain('installing');
  });

  it('without root it fails naming the command to run as root', () => {
    const r = run([], true);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('sudo bash scripts/install-deps.sh');
    expect(r.stderr).toContain('apt-get install -y ceph-base ceph-common ceph-mon ceph-osd chromium containerd docker-registry openssl podman postgresql prometheus radosgw skopeo');
    expect(r.stdout).not.toContain('installing');
  });
});
