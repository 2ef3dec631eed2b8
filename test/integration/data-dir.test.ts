/**
 * The data directory as an operator meets it (issue 15 items 1, 2, 15): one process at a
 * time changes it (a second serve, gc or fsck --repair is refused naming the holder's PID;
 * read-only fsck may run and does not call a live fill's temp file a leftover), a non-root
 * serve on a directory it cannot write fails at start with one line, and `regcache
 * healthcheck` follows the configured listener.
 */
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import {
  CLI_PATH, REPO_ROOT, cleanupAll, freePort, runCommand, startRegcache, stopAllChildren, tmpDir, type Regcache,
} from '../helpers/index.js';

const cli = (args: string[], env: Record<string, string> = {}): ReturnType<typeof runCommand> =>
  runCommand(process.execPath, [CLI_PATH, ...args], { cwd: REPO_ROOT, timeoutMs: 30_000, env: { ...process.env, ...env } });

afterAll(async () => {
  await stopAllChildren();
  await cleanupAll();
});

describe('one writer per data directory', () => {
  let rc: Regcache;
  beforeAll(async () => {
    rc = await startRegcache({ config: { upstreams: {} } });
  });

  it('a second serve on the same dataDir exits non-zero naming the first one\'s PID, and leaves its temp files alone', async () => {
    // Stands for a fill in progress of the running serve: a second start-up recovery deleted it.
    const part = join(rc.dataDir, 'tmp', 'live-fill.part');
    writeFileSync(part, 'partial');
    const port = await freePort();
    const r = await cli(['serve', '--config', rc.configPath, '--listen', `127.0.0.1:${port}`]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`data directory ${rc.dataDir} is in use by regcache serve (PID ${rc.proc.pid}`);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(rc.running).toBe(true);
    expect(existsSync(part)).toBe(true);
    const fsck = await cli(['fsck', '--config', rc.configPath]);
    expect(fsck.stdout).toContain(`in use by regcache serve (PID ${rc.proc.pid}): fills in progress  1 (not leftovers)`);
  });

  it('gc and fsck --repair are refused while serve holds the directory; gc --dry-run may run', async () => {
    for (const args of [['gc'], ['fsck', '--repair']]) {
      const r = await cli([...args, '--config', rc.configPath]);
      expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(1);
      expect(r.stderr).toContain(`is in use by regcache serve (PID ${rc.proc.pid}`);
      expect(r.stderr).toContain(`${args.join(' ')} needs it alone`);
    }
    const dry = await cli(['gc', '--dry-run', '--config', rc.configPath]);
    expect(dry.code, dry.stderr).toBe(0);
  });

  it('read-only fsck beside a live serve does not call its fill\'s temp file a leftover; after the serve stops it does', async () => {
    const live = await cli(['fsck', '--config', rc.configPath]);
    expect(live.code, live.stdout + live.stderr).toBe(0);
    expect(live.stdout).toMatch(/temp files left by an earlier run\s+found: 0/);
    await rc.stop();
    const stopped = await cli(['fsck', '--config', rc.configPath]);
    expect(stopped.code, stopped.stdout + stopped.stderr).toBe(3);
    expect(stopped.stdout).toMatch(/temp files left by an earlier run\s+found: 1/);
    expect(stopped.stdout).not.toContain('in use by');
    // Nobody holds it now: repair and gc run.
    expect((await cli(['fsck', '--repair', '--config', rc.configPath])).code).toBe(0);
    expect((await cli(['gc', '--config', rc.configPath])).code).toBe(0);
  });

  it('the lock dies with its holder: after kill -9 a new serve starts', async () => {
    await rc.restart();
    await rc.kill9();
    await rc.restart();
    expect(rc.running).toBe(true);
    await rc.stop();
  });
});

describe('a data directory serve cannot write', () => {
  it('a non-root serve fails at start with one line naming the directory, the user and the uid to chown to', async () => {
    const base = tmpDir('regcache-perm-');
    chmodSync(base, 0o755);
    const data = join(base, 'data');
    // A store made by root (index, blobs/, tmp/), then served by an unprivileged user.
    const asRoot = await startRegcache({ config: { dataDir: data, upstreams: {} } });
    await asRoot.stop();
    chmodSync(data, 0o755);
    const port = await freePort();
    const cfgFile = join(base, 'regcache.yaml');
    writeFileSync(cfgFile, stringify({ listen: `127.0.0.1:${port}`, dataDir: data, logFormat: 'json', upstreams: {} }));
    chmodSync(cfgFile, 0o644);
    const r = await runCommand('/usr/bin/setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI_PATH, 'serve', '--config', cfgFile], {
      cwd: REPO_ROOT, timeoutMs: 15_000,
    });
    expect(r.timedOut, 'serve started instead of failing').toBe(false);
    expect(r.code, r.stderr).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^regcache: data directory ${data} is not writable by user \\S+ \\(uid 65534\\): .*EACCES; fix with: chown -R 65534:65534 ${data}`));
  });
});

describe('regcache healthcheck', () => {
  it('probes the configured listener (and REGCACHE_LISTEN), not 127.0.0.1:5000', async () => {
    const rc = await startRegcache({ config: { upstreams: {} } });
    const ok = await cli(['healthcheck', '--config', rc.configPath]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain(`http://127.0.0.1:${rc.port}/healthz`);
    const other = await freePort();
    const bad = await cli(['healthcheck', '--config', rc.configPath], { REGCACHE_LISTEN: `127.0.0.1:${other}` });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`unhealthy: http://127.0.0.1:${other}/healthz: ECONNREFUSED`);
    await rc.stop();
    const down = await cli(['healthcheck', '--config', rc.configPath]);
    expect(down.code).toBe(1);
  });
});
