/**
 * Scheduled copies (`copy.<name>`) with real components: Debian's docker-registry as
 * source and, behind counting forwarders, as an htpasswd destination (credentials from the
 * job's `registryConfig`); regcache as a process. A job runs at start and again on its
 * interval, shows status and history on /api/v1/sync, emits copy.* events to the bus and to
 * a webhook; a dryRun job sends no write request; `regcache sync now` drives a copy job; a
 * kill -9 in the middle of a run is recorded INTERRUPTED and the run is made again.
 */
import { createServer, type Server } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLI_PATH, REPO_ROOT, cleanupAll, httpProbe, makeImage, makeLayer, pushImage, runCommand, sha256, skopeoInspectRaw,
  startForwarder, startRegcache, startRegistry, stopAllChildren, tmpDir,
  type Forwarder, type Image, type Regcache, type Registry,
} from '../helpers/index.js';

const SECRET = 'copyjob-Pa55-never-shown';
let source: Registry;
let srcFwd: Forwarder;
let dest: Registry;
let dstFwd: Forwarder;
let rc: Regcache;
let hook: Server;
const received: Array<Record<string, any>> = [];
let v1: Image;
let v2: Image;
let big: Image;

const WRITES = /^(POST|PUT|PATCH|DELETE)$/;

async function status(name: string): Promise<any> {
  const r = await httpProbe(`${rc.url}/api/v1/sync/${name}`);
  return JSON.parse(r.body.toString('utf8'));
}

async function until(cond: () => Promise<boolean> | boolean, what: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const cli = (args: string[]): ReturnType<typeof runCommand> =>
  runCommand(process.execPath, [CLI_PATH, 'sync', ...args, '--config', rc.configPath], { cwd: REPO_ROOT, timeoutMs: 120_000 });

beforeAll(async () => {
  const work = tmpDir('regcache-copyjobs-');
  source = await startRegistry();
  srcFwd = await startForwarder(source);
  dest = await startRegistry({ auth: 'htpasswd', htpasswd: { user: 'robot', password: SECRET } });
  dstFwd = await startForwarder(dest);
  const authFile = join(work, 'auth.json');
  writeFileSync(authFile, JSON.stringify({ auths: { [dstFwd.host]: { auth: Buffer.from(`robot:${SECRET}`).toString('base64') } } }));
  const mapFile = join(work, 'big.txt');
  writeFileSync(mapFile, `# the big one\n${srcFwd.host}/org/big:v1 ${dstFwd.host}/mirror/big:v1\n`);

  const shared = makeLayer({ randomBytes: 256 * 1024, seed: 'copyjob-shared' });
  v1 = makeImage({ format: 'oci', layers: [shared, makeLayer({ 'v1.txt': 'one' })] });
  v2 = makeImage({ format: 'docker', layers: [shared, makeLayer({ 'v2.txt': 'two' })] });
  big = makeImage({ format: 'oci', layers: [makeLayer({ randomBytes: 6 * 1024 * 1024, seed: 'copyjob-big' })] });
  await pushImage(source.url, 'org/app', 'v1', v1);
  await pushImage(source.url, 'org/app', 'v2', v2);
  await pushImage(source.url, 'org/big', 'v1', big);

  hook = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  const hookPort = (hook.address() as { port: number }).port;

  const common = { insecure: [srcFwd.host, dstFwd.host], registryConfig: authFile };
  rc = await startRegcache({
    config: {
      retention: { interval: 0 },
      copy: {
        every: { ...common, mappings: [`${srcFwd.host}/org/app:* ${dstFwd.host}/mirror/app`], interval: '3s' },
        plan: { ...common, mappings: `# planned only\n${srcFwd.host}/org/app:* ${dstFwd.host}/planned/app\n`, dryRun: true },
        big: { ...common, files: [mapFile], enabled: false, retries: 0 },
      },
      webhooks: { hook: { url: `http://127.0.0.1:${hookPort}/hook`, jobs: ['every'], events: ['copy.started', 'copy.succeeded', 'copy.failed'] } },
    },
  });
}, 180_000);

afterAll(async () => {
  await rc?.stop();
  await new Promise<void>((r) => (hook ? hook.close(() => r()) : r()));
  await srcFwd?.close();
  await dstFwd?.close();
  await stopAllChildren();
  await cleanupAll();
});

describe('scheduled copies against docker-registry', () => {
  it('runs at start and again on its interval; the destination has the source digests; status and history show it', async () => {
    // A snapshot between runs (a run in progress has no nextRun).
    let d: any;
    await until(async () => {
      d = await status('every');
      return d.state === 'SUCCESS' && d.history.filter((r: any) => r.result === 'SUCCESS').length >= 2;
    }, 'two scheduled runs', 90_000);
    expect(d).toMatchObject({ name: 'every', kind: 'copy', enabled: true });
    const [first, second] = d.history.filter((r: any) => r.result === 'SUCCESS');
    expect(first).toMatchObject({ trigger: 'schedule', counts: { synced: 2, unchanged: 0, failed: 0 } });
    expect(first.bytes).toBeGreaterThan(256 * 1024);
    // The second run comes on the interval and finds everything there.
    expect(second).toMatchObject({ trigger: 'schedule', counts: { synced: 0, unchanged: 2, failed: 0 }, bytes: 0 });
    // Not before the interval (a timer may fire a millisecond early against the wall clock).
    expect(Date.parse(second.startedAt) - Date.parse(first.startedAt)).toBeGreaterThanOrEqual(3000 - 50);
    expect(Date.parse(d.nextRun)).toBeGreaterThan(Date.parse(d.lastRun.startedAt));
    expect(d.config).toMatchObject({ interval: 3000, dryRun: false });
    const creds = `robot:${SECRET}`;
    expect(sha256(await skopeoInspectRaw(`docker://${dest.host}/mirror/app:v1`, { creds }))).toBe(v1.digest);
    expect(sha256(await skopeoInspectRaw(`docker://${dest.host}/mirror/app:v2`, { creds }))).toBe(v2.digest);
    const list = JSON.parse((await httpProbe(`${rc.url}/api/v1/sync`)).body.toString('utf8'));
    expect(list.jobs.map((j: any) => `${j.name} ${j.kind}`).sort()).toEqual(['big copy', 'every copy', 'plan copy']);
    expect(JSON.stringify(d) + rc.stdout()).not.toContain(SECRET);
  });

  it('fires copy.* events on the bus and to the webhook', async () => {
    const ev = JSON.parse((await httpProbe(`${rc.url}/api/v1/events?n=500`)).body.toString('utf8')).events as any[];
    const mine = ev.filter((e) => e.subject === 'every').map((e) => e.type);
    expect(mine.slice(0, 4)).toEqual(['copy.started', 'copy.succeeded', 'copy.started', 'copy.succeeded']);
    const ok = ev.find((e) => e.subject === 'every' && e.type === 'copy.succeeded');
    expect(ok.data).toMatchObject({ job: 'every', result: 'SUCCESS', counts: { synced: 2, failed: 0 } });
    await until(() => received.filter((e) => e.type === 'copy.succeeded').length >= 2, 'two webhook deliveries');
    expect(received[0]).toMatchObject({ specversion: '1.0', source: 'regcache', type: 'copy.started', subject: 'every' });
    expect(received.find((e) => e.type === 'copy.succeeded')).toMatchObject({ subject: 'every', data: { job: 'every', result: 'SUCCESS' } });
    // The webhook takes only the job it names.
    expect(received.every((e) => e.subject === 'every')).toBe(true);
    expect((await status('every')).lastWebhook).toMatchObject({ ok: true, status: 204 });
  });

  it('a dryRun job plans and sends no write request to the destination', async () => {
    await until(async () => (await status('plan')).lastRun?.result === 'SUCCESS', 'the dry run');
    const d = await status('plan');
    // Both tags planned (counted as pending: nothing was written), with the bytes they would send.
    expect(d.lastRun).toMatchObject({ trigger: 'schedule', counts: { synced: 0, unchanged: 0, pending: 2, failed: 0 } });
    expect(d.lastRun.bytes).toBeGreaterThan(256 * 1024);
    const planned = dstFwd.requests.filter((r) => r.path.startsWith('/v2/planned/'));
    expect(planned.length).toBeGreaterThan(0);
    expect(planned.filter((r) => WRITES.test(r.method))).toEqual([]);
    await expect(skopeoInspectRaw(`docker://${dest.host}/planned/app:v1`, { creds: `robot:${SECRET}` })).rejects.toThrow();
  });

  it('`regcache sync now` runs a disabled copy job from its mapping file; kill -9 mid-run is recorded INTERRUPTED and the run is made again', async () => {
    srcFwd.setFault({ trickleBytesPerSec: 1024 * 1024 });
    srcFwd.reset();
    expect((await cli(['now', 'big'])).stdout).toMatch(/^big: run \S+ started\n$/);
    await until(() => srcFwd.count('GET', /\/org\/big\/blobs\//) > 0, 'the big layer to be fetched');
    expect((await status('big')).state).toBe('SYNCING');
    await rc.kill9();
    srcFwd.setFault({});
    await rc.restart();
    await until(async () => (await status('big')).state === 'SUCCESS', 'the re-run to succeed', 90_000);
    const d = await status('big');
    expect(d.history.map((r: any) => `${r.trigger} ${r.result}`)).toEqual(['now INTERRUPTED', 'start SUCCESS']);
    expect(sha256(await skopeoInspectRaw(`docker://${dest.host}/mirror/big:v1`, { creds: `robot:${SECRET}` }))).toBe(big.digest);
    const again = await cli(['now', 'big', '--wait']);
    expect(again.stdout).toBe('big: SUCCESS (0 synced, 1 unchanged, 0 failed, 0 bytes)\n');
  });
});
