/**
 * `regcache gc` and `fsck` on a terminal (issue 14, CLI progress): run under a
 * pseudo-terminal (util-linux `script`), they draw cli-progress bars (cursor hidden, redrawn
 * in place, given back at the end) instead of the plain lines a pipe gets, and the report,
 * printed above the bars, still names the image by its tag. The store is filled by pulling
 * an image from Debian's docker-registry through regcache.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { App } from '../../src/app.js';
import { validateConfig } from '../../src/config/validate.js';
import {
  cleanupAll, CLI_PATH, httpProbe, makeImage, makeLayer, pushImage, requireTools, runCommand, startRegistry, stopAllChildren, tmpDir,
  type Registry,
} from '../helpers/index.js';

const img = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 100 * 1024, seed: 'tty' })] });
let upstream: Registry;
let configFile: string;

beforeAll(async () => {
  requireTools(['script']);
  upstream = await startRegistry();
  await pushImage(upstream.url, 'r/tty', 'v1', img);
  const dataDir = tmpDir('regcache-tty-');
  // Pulled "at" 2026-01-01: older than retention.maxAge by the time gc runs.
  const raw = { listen: '127.0.0.1:0', dataDir, logLevel: 'silent', retention: { interval: 0, maxAge: '1h' }, upstreams: { 'docker.io': { url: upstream.url } }, defaultUpstream: 'docker.io' };
  configFile = join(tmpDir('regcache-tty-cfg-'), 'regcache.yaml');
  writeFileSync(configFile, stringify(raw));
  const app = new App(validateConfig(raw), { log: pino({ level: 'silent' }), now: () => Date.parse('2026-01-01T00:00:00Z'), defaultMetrics: false });
  await app.start();
  try {
    const url = `http://127.0.0.1:${app.mainPort}/v2/r/tty`;
    expect((await httpProbe(`${url}/manifests/v1`)).status).toBe(200);
    for (const b of [img.config, ...img.layers]) expect((await httpProbe(`${url}/blobs/${b.digest}`)).status).toBe(200);
    await app.proxy.blobs.idle();
  } finally {
    await app.stop(1000);
  }
}, 120_000);

afterAll(async () => {
  await upstream?.stop();
  await stopAllChildren();
  await cleanupAll();
});

/** Runs a regcache command with stdout and stderr on a pseudo-terminal, as a user at a shell would. */
async function onTerminal(args: string[]): Promise<{ code: number | null; out: string }> {
  const command = [process.execPath, CLI_PATH, ...args].map((a) => `'${a}'`).join(' ');
  // -e: script exits with the command's status; -f: output as it comes; /dev/null: no typescript file.
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', TERM: 'xterm', HOME: process.env.HOME ?? '/root' };
  const r = await runCommand('script', ['-qfec', command, '/dev/null'], { env, timeoutMs: 60_000 });
  return { code: r.code, out: r.stdout };
}

const HIDE_CURSOR = '\x1b[?25l';
const SHOW_CURSOR = '\x1b[?25h';

describe('gc and fsck on a terminal', () => {
  it('fsck draws a bar per check and gives the cursor back; the report follows', async () => {
    const r = await onTerminal(['fsck', '--config', configFile]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain(HIDE_CURSOR);
    expect(r.out.lastIndexOf(SHOW_CURSOR)).toBeGreaterThan(r.out.lastIndexOf(HIDE_CURSOR));
    expect(r.out).toMatch(/blob files \[[=-]+\] 2\/2/);
    expect(r.out).not.toContain('fsck: blob files');
    expect(r.out).toMatch(/index rows with no file\s+found: 0/);
  });

  it('gc --dry-run counts on a bar and prints the image above it, named by its tag', async () => {
    const r = await onTerminal(['gc', '--dry-run', '--config', configFile]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain(HIDE_CURSOR);
    expect(r.out).toMatch(/planning 1 /);
    expect(r.out).not.toContain('gc: planning');
    expect(r.out).toContain(`would remove image ${img.digest} [docker.io/r/tty:v1]`);
    expect(r.out).toMatch(/dry run: would free .*; 1 image\(s\)/);
  });
});
