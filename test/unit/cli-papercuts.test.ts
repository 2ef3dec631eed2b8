/**
 * Operator papercuts in the command line (issue 15 items 1, 10, 14, 15, 19), in-process or
 * with the TypeScript sources (no dist/, no system tools).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CliIo } from '../../src/cli/args.js';
import { isSingleFileMount, mountPoints } from '../../src/cli/config-watch.js';
import { containerdConfig } from '../../src/cli/containerd-config.js';
import { healthcheck, healthUrl } from '../../src/cli/healthcheck.js';
import { loadCommandConfig } from '../../src/cli/overrides.js';
import { acquireDataDirLock, dataDirLockHolder, DataDirLockedError } from '../../src/store/fs/data-dir-lock.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const dirs: string[] = [];
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'regcache-unit-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function io(env: NodeJS.ProcessEnv = {}): CliIo & { out: string; err: string } {
  const o = { out: '', err: '', env, stdout: (s: string) => void (o.out += s), stderr: (s: string) => void (o.err += s) };
  return o;
}

function configFile(text: string): string {
  const f = join(tmp(), 'regcache.yaml');
  writeFileSync(f, text);
  return f;
}

describe('environment overrides are the same for every command (item 10)', () => {
  const file = configFile('listen: 0.0.0.0:5000\ndataDir: /var/lib/regcache\nupstreams:\n  ghcr.io:\n    url: https://ghcr.io\n');

  it('loadCommandConfig: REGCACHE_CONFIG picks the file, REGCACHE_LISTEN/REGCACHE_DATA_DIR override it, flags beat both', () => {
    const env = { REGCACHE_CONFIG: file, REGCACHE_LISTEN: '127.0.0.1:7000', REGCACHE_DATA_DIR: '/srv/cache' };
    const a = loadCommandConfig({}, env);
    expect(a.file).toBe(file);
    expect(a.config.listen).toEqual({ host: '127.0.0.1', port: 7000 });
    expect(a.config.dataDir).toBe('/srv/cache');
    const b = loadCommandConfig({ listen: '127.0.0.1:7001', data: '/x' }, env);
    expect(b.config.listen.port).toBe(7001);
    expect(b.config.dataDir).toBe('/x');
  });

  it('containerd-config follows REGCACHE_LISTEN', async () => {
    const o = io({ REGCACHE_CONFIG: file, REGCACHE_LISTEN: '0.0.0.0:7000' });
    expect(await containerdConfig(['--format', 'registries.yaml'], o)).toBe(0);
    expect(o.out).toContain(':7000');
    expect(o.out).not.toContain(':5000');
  });

  it('a bad REGCACHE_LISTEN is a one-line error naming the variable', async () => {
    const o = io({ REGCACHE_CONFIG: file, REGCACHE_LISTEN: 'nonsense' });
    expect(await containerdConfig(['--format', 'registries.yaml'], o)).toBe(1);
    expect(o.err).toMatch(/^regcache containerd-config: REGCACHE_LISTEN: invalid address "nonsense"/);
  });
});

describe('regcache healthcheck (item 15)', () => {
  it('maps wildcard listeners to loopback and follows tls', () => {
    expect(healthUrl({ listen: { host: '0.0.0.0', port: 5000 } })).toBe('http://127.0.0.1:5000/healthz');
    expect(healthUrl({ listen: { host: '::', port: 6000 } })).toBe('http://[::1]:6000/healthz');
    expect(healthUrl({ listen: { host: '10.1.2.3', port: 80 } })).toBe('http://10.1.2.3:80/healthz');
    expect(healthUrl({ listen: { host: '127.0.0.1', port: 443 }, tls: { cert: 'c', key: 'k' } })).toBe('https://127.0.0.1:443/healthz');
  });

  it('exits 0 on 200 from the configured listener, 1 on anything else', async () => {
    let status = 200;
    const paths: string[] = [];
    const server: Server = createServer((req, res) => {
      paths.push(req.url ?? '');
      res.writeHead(status).end('{}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    try {
      const file = configFile(`listen: 127.0.0.1:${port}\n`);
      const ok = io({ REGCACHE_CONFIG: file });
      expect(await healthcheck([], ok)).toBe(0);
      expect(paths).toEqual(['/healthz']);
      status = 503;
      const bad = io({ REGCACHE_CONFIG: file });
      expect(await healthcheck([], bad)).toBe(1);
      expect(bad.err).toBe(`regcache healthcheck: unhealthy: http://127.0.0.1:${port}/healthz answered 503\n`);
      // The default config says 0.0.0.0:5000; REGCACHE_LISTEN moves the probe, as it moves serve.
      status = 200;
      const viaEnv = io({ REGCACHE_CONFIG: join(ROOT, 'config', 'regcache.yaml'), REGCACHE_LISTEN: `127.0.0.1:${port}` });
      expect(await healthcheck(['--timeout', '5s'], viaEnv)).toBe(0);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});

describe('data directory lock (item 1)', () => {
  it('a second holder is refused naming the first one\'s PID and command; release frees it', () => {
    const d = tmp();
    expect(dataDirLockHolder(d)).toBeUndefined();
    const first = acquireDataDirLock(d, 'serve', 4242);
    let err: unknown;
    try {
      acquireDataDirLock(d, 'fsck --repair', process.pid);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DataDirLockedError);
    expect((err as Error).message).toMatch(new RegExp(`^data directory ${d} is in use by regcache serve \\(PID 4242, since .*\\); fsck --repair needs it alone`));
    expect(dataDirLockHolder(d)).toMatchObject({ pid: 4242, command: 'serve' });
    first.release();
    expect(dataDirLockHolder(d)).toBeUndefined();
    acquireDataDirLock(d, 'gc', process.pid).release();
  });

  it('the lock is held against other processes too', async () => {
    const d = tmp();
    const lock = acquireDataDirLock(d, 'serve', process.pid);
    try {
      const script = `import { acquireDataDirLock } from ${JSON.stringify(join(ROOT, 'src/store/fs/data-dir-lock.ts'))};
        try { acquireDataDirLock(${JSON.stringify(d)}, 'gc', process.pid); console.log('acquired'); } catch (e) { console.log(e.message); }`;
      const r = await runNode(['--import', join(ROOT, 'scripts/register-ts.mjs'), '--input-type=module', '-e', script]);
      expect(r.stdout).toContain(`in use by regcache serve (PID ${process.pid}`);
    } finally {
      lock.release();
    }
  });
});

describe('config file mounted on its own (item 14)', () => {
  it('finds a single-file bind mount in mountinfo (octal escapes decoded)', () => {
    const file = configFile('listen: 0.0.0.0:5000\n');
    const real = realpathSync(file);
    const info = [
      '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
      `831 22 8:1 /home/me/my.yaml ${real} ro,relatime - ext4 /dev/sda1 rw`,
      '832 22 0:50 / /mnt/with\\040space rw - tmpfs tmpfs rw',
    ].join('\n');
    expect(mountPoints(info)).toEqual(new Set(['/', real, '/mnt/with space']));
    expect(isSingleFileMount(file, info)).toBe(true);
    expect(isSingleFileMount(file, info.split('\n')[0]!)).toBe(false);
  });
});

function runNode(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise) => {
    const c = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => c.kill('SIGKILL'), 30_000);
    c.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

describe('output to a reader that went away (item 19)', () => {
  it('`regcache ... | head` exits with the command\'s status and no EPIPE stack trace', async () => {
    const file = configFile('listen: 0.0.0.0:5000\nupstreams:\n  ghcr.io:\n    url: https://ghcr.io\n');
    const c = spawn(process.execPath, ['--import', join(ROOT, 'scripts/register-ts.mjs'), join(ROOT, 'src/cli.ts'), 'containerd-config', '--format', 'hosts.toml', '--default', '--config', file], {
      cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'],
    });
    c.stdout.destroy(); // like head exiting before the first write
    let stderr = '';
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((r) => c.on('close', r));
    expect(stderr).not.toContain('EPIPE');
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });
});
