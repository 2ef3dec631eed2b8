/**
 * `regcache copy` end to end, as a process, against real registries: Debian's
 * docker-registry as source, and as destinations one with htpasswd (Basic, behind a
 * request-counting forwarder) and one with token auth (Bearer, via a token issuer);
 * credentials from a docker-style auth file ($REGISTRY_AUTH_FILE). Digests are compared
 * with `skopeo inspect --raw`.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLI_PATH, cleanupAll, makeImage, makeIndex, makeLayer, pushImage, pushIndex, runCommand, sha256, skopeoInspectRaw,
  startForwarder, startRegistry, startTokenIssuer, stopAllChildren, tmpDir,
  type Forwarder, type Image, type Index, type Registry, type RunResult, type TokenIssuer,
} from '../helpers/index.js';
import { parseAuthFile } from '../../src/transfer/auth-file.js';
import { parseMappingText } from '../../src/transfer/mapping.js';
import { RegistrySet } from '../../src/transfer/registries.js';
import { runCopy, runCopyPlan, type CopyEvent } from '../../src/transfer/run-copy.js';

const SECRET = 'copy-Pa55-never-printed';
let source: Registry;
let basic: Registry;
let basicFwd: Forwarder;
let issuer: TokenIssuer;
let tokenReg: Registry;
let work: string;
let authFile: string;
let v1: Image;
let v2: Image;
let multi: Index;

const WRITES = /^(POST|PUT|PATCH|DELETE)$/;
function writes(f: Forwarder): number {
  return f.requests.filter((r) => WRITES.test(r.method)).length;
}

async function copy(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  const r = await runCommand(process.execPath, [CLI_PATH, 'copy', ...args], {
    cwd: work, timeoutMs: 120_000,
    env: { ...process.env, REGISTRY_AUTH_FILE: authFile, ...env },
  });
  expect(r.stdout + r.stderr).not.toContain(SECRET);
  return r;
}

async function rawDigest(ref: string, creds?: string): Promise<string> {
  return sha256(await skopeoInspectRaw(`docker://${ref}`, creds ? { creds } : {}));
}

beforeAll(async () => {
  work = tmpDir('regcache-copy-');
  source = await startRegistry();
  basic = await startRegistry({ auth: 'htpasswd', htpasswd: { user: 'robot', password: SECRET } });
  basicFwd = await startForwarder(basic);
  issuer = await startTokenIssuer({ service: 'copy-test', users: { robot: SECRET }, anonymous: 'deny' });
  tokenReg = await startRegistry({ auth: 'token', tokenIssuer: issuer });
  authFile = join(work, 'auth.json');
  const auth = Buffer.from(`robot:${SECRET}`).toString('base64');
  writeFileSync(authFile, JSON.stringify({ auths: { [basicFwd.host]: { auth }, [`http://${tokenReg.host}`]: { auth } } }));

  const shared = makeLayer({ randomBytes: 1024 * 1024, seed: 'shared' });
  v1 = makeImage({ format: 'docker', layers: [shared, makeLayer({ 'v1.txt': 'one' })] });
  v2 = makeImage({ format: 'docker', layers: [shared, makeLayer({ 'v2.txt': 'two' })] });
  await pushImage(source.url, 'org/app', 'v1', v1);
  await pushImage(source.url, 'org/app', 'v2', v2);
  const plat = (arch: string, variant?: string): Image => makeImage({
    format: 'oci', arch, ...(variant ? { variant } : {}), layers: [makeLayer({ randomBytes: 256 * 1024, seed: `multi-${arch}` })],
  });
  multi = makeIndex('oci', [plat('amd64'), plat('arm64', 'v8'), plat('s390x')]);
  await pushIndex(source.url, 'org/multi', '1', multi);
});

afterAll(async () => {
  await basicFwd?.close();
  await issuer?.close();
  await stopAllChildren();
  await cleanupAll();
});

describe('regcache copy', () => {
  it('dry run prints the plan and sends no write request', async () => {
    basicFwd.reset();
    const r = await copy(['--dry-run', '--insecure', `${source.host},${basicFwd.host}`,
      `${source.host}/org/app:*`, `${basicFwd.host}/mirror/app`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`would copy ${source.host}/org/app:v1 -> ${basicFwd.host}/mirror/app:v1 ${v1.digest}`);
    expect(r.stdout).toContain(`${source.host}/org/app:v2 -> ${basicFwd.host}/mirror/app:v2 ${v2.digest}`);
    expect(r.stdout).toMatch(/blobs: 3 to send .*0 already there/);
    expect(r.stdout).toMatch(/2 to copy, 0 unchanged, 0 failed/);
    expect(basicFwd.count('HEAD')).toBeGreaterThan(0);
    expect(writes(basicFwd)).toBe(0);
  });

  it('copies every tag and a multi-platform index with all children, digests equal (Basic auth, mapping file)', async () => {
    const map = join(work, 'mapping.txt');
    writeFileSync(map, [
      '# OpenShift-style mapping',
      `${source.host}/org/app:* ${basicFwd.host}/mirror/app`,
      '',
      `${source.host}/org/multi:1=${basicFwd.host}/mirror/multi:1`,
    ].join('\n'));
    const r = await copy(['-f', map, '--insecure', source.host, '--insecure', basicFwd.host]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const creds = `robot:${SECRET}`;
    expect(await rawDigest(`${basic.host}/mirror/app:v1`, creds)).toBe(v1.digest);
    expect(await rawDigest(`${basic.host}/mirror/app:v2`, creds)).toBe(v2.digest);
    expect(await rawDigest(`${basic.host}/mirror/multi:1`, creds)).toBe(multi.digest);
    for (const img of multi.images) expect(await rawDigest(`${basic.host}/mirror/multi@${img.digest}`, creds)).toBe(img.digest);
    expect(r.stdout).toMatch(/3 copied, 0 unchanged, 0 failed, 0 skipped/);
  });

  it('a rerun sends nothing', async () => {
    basicFwd.reset();
    const r = await copy(['--insecure', `${source.host},${basicFwd.host}`,
      `${source.host}/org/app:*=${basicFwd.host}/mirror/app`, `${source.host}/org/multi:1=${basicFwd.host}/mirror/multi:1`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/0 copied, 3 unchanged/);
    expect(writes(basicFwd)).toBe(0);
  });

  it('--force sends again what the destination already has', async () => {
    basicFwd.reset();
    const r = await copy(['--force', '--insecure', `${source.host},${basicFwd.host}`, `${source.host}/org/app:v1=${basicFwd.host}/mirror/app:v1`]);
    expect(r.code, r.stderr).toBe(0);
    expect(basicFwd.count('HEAD')).toBe(0);
    expect(basicFwd.count('PUT', /\/mirror\/app\/blobs\/uploads\//)).toBe(3);
    expect(basicFwd.count('PUT', '/v2/mirror/app/manifests/v1')).toBe(1);
    expect(await rawDigest(`${basic.host}/mirror/app:v1`, `robot:${SECRET}`)).toBe(v1.digest);
  });

  it('mounts a blob already sent to another repository of the same registry instead of sending it again', async () => {
    basicFwd.reset();
    const r = await copy(['--insecure', `${source.host},${basicFwd.host}`,
      `${source.host}/org/app:v2`, `${basicFwd.host}/mount/a`, `${basicFwd.host}/mount/b`]);
    expect(r.code, r.stderr).toBe(0);
    // 3 blobs (config, shared layer, own layer): sent once each, mounted once each into the other repository.
    expect(basicFwd.count('POST', /\/blobs\/uploads\/\?mount=/)).toBe(3);
    expect(basicFwd.count('PUT', /\/blobs\/uploads\//)).toBe(3);
    expect(await rawDigest(`${basic.host}/mount/b:v2`, `robot:${SECRET}`)).toBe(v2.digest);
    expect(r.stdout).toMatch(/3 mounted/);
  });

  it('within one registry, mounts from the source repository', async () => {
    basicFwd.reset();
    const r = await copy(['--insecure', basicFwd.host, `${basicFwd.host}/mirror/app:v2`, `${basicFwd.host}/samereg/app:v2`]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(basicFwd.count('POST', /\/samereg\/app\/blobs\/uploads\/\?mount=.*from=mirror%2Fapp/)).toBe(3);
    expect(basicFwd.count('PUT', /\/blobs\/uploads\//)).toBe(0);
    expect(await rawDigest(`${basic.host}/samereg/app:v2`, `robot:${SECRET}`)).toBe(v2.digest);
  });

  it('copies to a token-auth registry with credentials from the auth file', async () => {
    const r = await copy(['--insecure', `${source.host},${tokenReg.host}`, `${source.host}/org/multi:1`, `${tokenReg.host}/team/multi:1`, `${tokenReg.host}/team2/multi:1`]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await rawDigest(`${tokenReg.host}/team/multi:1`, `robot:${SECRET}`)).toBe(multi.digest);
    expect(await rawDigest(`${tokenReg.host}/team2/multi:1`, `robot:${SECRET}`)).toBe(multi.digest);
    // Whichever repository is copied second mounts from the first (the two run in parallel,
    // so either may be first): its token covers pull on the other repository too.
    const lines = r.stdout.split('\n').filter((l) => /\/team2?\/multi:1 /.test(l));
    expect(lines).toHaveLength(2);
    expect(lines.filter((l) => /6 sent/.test(l))).toHaveLength(1);
    expect(lines.filter((l) => /6 mounted/.test(l))).toHaveLength(1);
    expect(issuer.log.some((l) => l.user === 'robot' && l.access.some((a) => a.actions.includes('push')))).toBe(true);
  });

  it('mapping errors name file and line, overlaps are refused, and nothing is written (exit 2)', async () => {
    basicFwd.reset();
    const bad = join(work, 'bad-mapping.txt');
    writeFileSync(bad, `# header\n${source.host}/org/app:v1 ${basicFwd.host}/x/app:v1\n${source.host}/org/app:v1\nnginx:1 ${basicFwd.host}/x/n:1\n`);
    let r = await copy(['-f', bad, '--insecure', `${source.host},${basicFwd.host}`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${bad}:3: `);
    expect(r.stderr).toContain(`${bad}:4: `);
    expect(r.stderr).not.toContain(`${bad}:2:`);
    const overlap = join(work, 'overlap.txt');
    writeFileSync(overlap, `${source.host}/org/app:v1 ${basicFwd.host}/x/app:latest\n${source.host}/org/app:v2 ${basicFwd.host}/x/app:latest\n`);
    r = await copy(['-f', overlap, '--insecure', `${source.host},${basicFwd.host}`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${overlap}:2: destination ${basicFwd.host}/x/app:latest is also written by ${overlap}:1`);
    // a wildcard's tags overlap an explicit tag: found after listing, still before anything is copied
    r = await copy(['--insecure', `${source.host},${basicFwd.host}`,
      `${source.host}/org/app:*=${basicFwd.host}/y/app`, `${source.host}/org/multi:1=${basicFwd.host}/y/app:v1`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/destination .*\/y\/app:v1 is also written by/);
    expect(writes(basicFwd)).toBe(0);
  });

  it('--skip-missing skips absent sources; --continue-on-error copies the rest and exits 1', async () => {
    const ins = ['--insecure', `${source.host},${basicFwd.host}`];
    const good = `${source.host}/org/app:v1=${basicFwd.host}/miss/app:v1`;
    let r = await copy([...ins, '--skip-missing', `${source.host}/org/nope:1=${basicFwd.host}/miss/nope:1`, `${source.host}/org/gone:*=${basicFwd.host}/miss/gone`, good]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/1 copied, 0 unchanged, 0 failed, 2 skipped/);
    expect(r.stdout).toMatch(/^skipped .*org\/nope:1/m);

    const good2 = `${source.host}/org/app:v2=${basicFwd.host}/coe/app:v2`;
    r = await copy([...ins, '--continue-on-error', `${source.host}/org/app:nope=${basicFwd.host}/coe/app:nope`, good2]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^failed +.*org\/app:nope/m);
    expect(r.stdout).toMatch(/1 copied, 0 unchanged, 1 failed/);
    expect(await rawDigest(`${basic.host}/coe/app:v2`, `robot:${SECRET}`)).toBe(v2.digest);

    // the same without --skip-missing: a failure, exit 1
    r = await copy([...ins, `${source.host}/org/nope:1=${basicFwd.host}/miss/nope:1`]);
    expect(r.code).toBe(1);
  });

  it('--output json: one line per image and a summary', async () => {
    const r = await copy(['--output', 'json', '--dry-run', '--insecure', `${source.host},${basicFwd.host}`, `${source.host}/org/multi:1=${basicFwd.host}/json/multi:1`]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
    expect(lines[0]).toMatchObject({ type: 'image', status: 'planned', report: { digest: multi.digest, blobs: { sent: 6, present: 0 } } });
    expect(lines.at(-1)).toMatchObject({ type: 'summary', counts: { planned: 1, failed: 0 } });
  });
});

describe('platform filter', () => {
  const ins = (): string[] => ['--insecure', `${source.host},${basicFwd.host}`];
  const creds = `robot:${SECRET}`;
  const has = async (repo: string, digest: string): Promise<number> =>
    (await fetch(`${basic.url}/v2/${repo}/blobs/${digest}`, { method: 'HEAD', headers: { authorization: `Basic ${Buffer.from(creds).toString('base64')}` } })).status;

  it('one platform: that manifest alone (its own digest), and only its blobs are sent', async () => {
    const arm = multi.images[1]!;
    const r = await copy([...ins(), '--platforms', 'linux/arm64', `${source.host}/org/multi:1=${basicFwd.host}/pf/one:1`]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await rawDigest(`${basic.host}/pf/one:1`, creds)).toBe(arm.digest);
    expect(await has('pf/one', arm.layers[0]!.digest)).toBe(200);
    expect(await has('pf/one', multi.images[0]!.layers[0]!.digest)).toBe(404);
    expect(r.stdout).toContain('platform filter kept one manifest');
  });

  it('several platforms: a new index with those children, its digest printed', async () => {
    const r = await copy([...ins(), '--filter-by-os', 'linux/(amd64|s390x)', `${source.host}/org/multi:1=${basicFwd.host}/pf/two:1`]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const printed = /wrote a new index (sha256:[a-f0-9]{64})/.exec(r.stdout)?.[1];
    expect(printed).toBeDefined();
    const raw = await skopeoInspectRaw(`docker://${basic.host}/pf/two:1`, { creds });
    expect(sha256(raw)).toBe(printed);
    expect(printed).not.toBe(multi.digest);
    const doc = JSON.parse(raw.toString()) as { manifests: Array<{ digest: string }> };
    expect(doc.manifests.map((m) => m.digest)).toEqual([multi.images[0]!.digest, multi.images[2]!.digest]);
    expect(await has('pf/two', multi.images[1]!.layers[0]!.digest)).toBe(404);
  });

  it('--keep-manifest-list: docker-registry refuses the index without its other children; the command says so and writes a filtered one', async () => {
    const r = await copy([...ins(), '--platforms', 'linux/amd64', '--keep-manifest-list', `${source.host}/org/multi:1=${basicFwd.host}/pf/keep:1`]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const m = /refused the unchanged index (sha256:[a-f0-9]{64}) .*wrote a filtered index (sha256:[a-f0-9]{64})/.exec(r.stdout);
    expect(m?.[1]).toBe(multi.digest);
    expect(await rawDigest(`${basic.host}/pf/keep:1`, creds)).toBe(m?.[2]);
    // a rerun finds the filtered index in place and changes nothing
    basicFwd.reset();
    const again = await copy([...ins(), '--platforms', 'linux/amd64', '--keep-manifest-list', `${source.host}/org/multi:1=${basicFwd.host}/pf/keep:1`]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/0 copied, 1 unchanged/);
    expect(writes(basicFwd)).toBe(0);
  });
});

describe('runCopyPlan (what a scheduled copy job calls)', () => {
  it('returns a JobRun: counts per image, bytes, result; a second run is all unchanged', async () => {
    const { readFileSync } = await import('node:fs');
    const registries = new RegistrySet({ auth: parseAuthFile(readFileSync(authFile, 'utf8'), authFile), insecure: new Set([source.host, basicFwd.host]) });
    const mappings = parseMappingText(`${source.host}/org/app:* ${basicFwd.host}/job/app\n${source.host}/org/none:1 ${basicFwd.host}/job/none:1\n`, 'job');
    try {
      const events: CopyEvent['type'][] = [];
      const run = await runCopyPlan({ mappings, trigger: 'now' }, { registries, continueOnError: true }, (e) => events.push(e.type));
      expect(run).toMatchObject({ trigger: 'now', result: 'FAIL', counts: { synced: 2, unchanged: 0, failed: 1, pending: 0 } });
      expect(run.bytes).toBe(v1.layers[0]!.size + v1.layers[1]!.size + v2.layers[1]!.size + v1.config.size + v2.config.size);
      expect(run.tags?.find((t) => t.ref.endsWith('/job/app:v2'))).toMatchObject({ outcome: 'synced', digest: v2.digest });
      expect(run.tags?.find((t) => t.outcome === 'failed')?.reason).toMatch(/none/);
      expect(events).toContain('bytes');
      expect(run.endedAt).toBeDefined();
      const again = await runCopyPlan({ mappings: mappings.slice(0, 1) }, { registries }, () => undefined);
      expect(again).toMatchObject({ trigger: 'schedule', result: 'SUCCESS', counts: { synced: 0, unchanged: 2, failed: 0 }, bytes: 0 });
    } finally {
      await registries.close();
    }
  });
});

describe('upload modes', () => {
  it('blobs above the monolithic limit go up in streamed chunks (PATCH with Content-Range), digests equal', async () => {
    const { readFileSync } = await import('node:fs');
    const registries = new RegistrySet({ auth: parseAuthFile(readFileSync(authFile, 'utf8'), authFile), insecure: new Set([source.host, basicFwd.host]) });
    try {
      basicFwd.reset();
      const r = await runCopy(parseMappingText(`${source.host}/org/app:v1 ${basicFwd.host}/chunked/app:v1`, 'm'), {
        registries, monolithicMax: 64 * 1024, chunkSize: 300 * 1024,
      });
      expect(r.counts.copied).toBe(1);
      // the 1 MiB shared layer (plus tar/gzip framing) in 300 KiB chunks: 4 PATCHes; the small layer and the config monolithic
      expect(basicFwd.count('PATCH', /\/chunked\/app\/blobs\/uploads\//)).toBe(Math.ceil(v1.layers[0]!.size / (300 * 1024)));
      expect(basicFwd.count('PUT', /\/chunked\/app\/blobs\/uploads\//)).toBe(3);
      expect(await rawDigest(`${basic.host}/chunked/app:v1`, `robot:${SECRET}`)).toBe(v1.digest);
    } finally {
      await registries.close();
    }
  });
});

