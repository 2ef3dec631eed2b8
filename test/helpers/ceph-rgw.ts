/**
 * A throwaway S3 endpoint for tests: a single-node Ceph cluster (one monitor, one memstore OSD, one RADOS
 * Gateway) in a temp dir, loopback only, msgr2 only, no manager, nothing in /etc/ceph. The recipe and the
 * settings that make it start in a few seconds are in ../shared/notes/ceph-rgw.md. Every daemon is a tracked
 * child stopped by PID: gateway, then OSD, then monitor.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { runChecked, spawnManaged, type ManagedProcess } from './children.js';
import { freePort } from './ports.js';
import { requireTools } from './require-tools.js';
import { removeTmpDir, tmpDir } from './tmp.js';

export interface CephRgw {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** An S3 client for the gateway (path-style), for test set-up and inspection. */
  client(): S3Client;
  /** regcache's `storage` keys for blobs in `bucket` on this gateway. */
  storageConfig(bucket: string): Record<string, unknown>;
  /** The credentials as the AWS SDK's standard chain reads them, for a regcache process. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

export interface CephRgwOptions {
  /** RAM the memstore OSD may hold (default 1 GiB; it needs ~1.5x what is stored). */
  memoryBytes?: number;
}

const POOLS = ['.rgw.root', 'default.rgw.control', 'default.rgw.meta', 'default.rgw.log', 'default.rgw.buckets.index', 'default.rgw.buckets.data', 'default.rgw.buckets.non-ec'];

/** True if every port in [base, base + n) can be bound on 127.0.0.1 now. */
async function blockFree(base: number, n: number): Promise<boolean> {
  for (let p = base; p < base + n; p++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen({ host: '127.0.0.1', port: p, exclusive: true }, () => s.close(() => resolve(true)));
    });
    if (!ok) return false;
  }
  return true;
}

/** A block of n consecutive free loopback ports (the daemons' own bind range). */
async function freePortBlock(n: number): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    if (await blockFree(base, n)) return base;
  }
  throw new Error('no block of free ports found');
}

export async function startCephRgw(opts: CephRgwOptions = {}): Promise<CephRgw> {
  requireTools(['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'ceph', 'ceph-authtool', 'monmaptool']);
  const dir = tmpDir('regcache-ceph-');
  for (const d of ['run', 'log', 'mon', 'osd/ceph-0', 'rgw']) mkdirSync(join(dir, d), { recursive: true });
  const fsid = randomUUID();
  const osdUuid = randomUUID();
  const base = await freePortBlock(12);
  const monPort = base;
  const rgwPort = await freePort();
  const conf = join(dir, 'ceph.conf');
  const keyring = join(dir, 'keyring');
  writeFileSync(conf, `[global]
fsid = ${fsid}
mon host = v2:127.0.0.1:${monPort}
mon initial members = a
public addr = 127.0.0.1
keyring = ${keyring}
run dir = ${dir}/run
admin socket = ${dir}/run/$name.asok
pid file = ${dir}/run/$name.pid
log file = ${dir}/log/$name.log
mon data = ${dir}/mon/$cluster-$id
osd data = ${dir}/osd/$cluster-$id
osd objectstore = memstore
memstore device bytes = ${opts.memoryBytes ?? 1024 * 1024 * 1024}
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
ms bind msgr1 = false
ms bind ipv6 = false
ms bind port min = ${base + 1}
ms bind port max = ${base + 11}
paxos propose interval = 0.05
paxos min wait = 0.01
objecter tick interval = 0.2
rgw enable lc threads = false
rgw gc obj min wait = 5
rgw gc processor period = 5
debug ms = 0

[client.rgw.t]
rgw frontends = beast endpoint=127.0.0.1:${rgwPort}
rgw data = ${dir}/rgw
`);
  const c = ['-c', conf];
  const tool = (cmd: string, args: string[]): Promise<string> => runChecked(cmd, [...c, ...args], { timeoutMs: 60_000 });

  await tool('ceph-authtool', ['--create-keyring', keyring, '--gen-key', '-n', 'mon.', '--cap', 'mon', 'allow *']);
  await tool('ceph-authtool', [keyring, '--gen-key', '-n', 'client.admin', '--cap', 'mon', 'allow *', '--cap', 'osd', 'allow *', '--cap', 'mgr', 'allow *']);
  await tool('ceph-authtool', [keyring, '--gen-key', '-n', 'osd.0', '--cap', 'mon', 'allow profile osd', '--cap', 'osd', 'allow *']);
  await tool('ceph-authtool', [keyring, '--gen-key', '-n', 'client.rgw.t', '--cap', 'mon', 'allow rw', '--cap', 'osd', 'allow rwx']);
  const monmap = join(dir, 'monmap');
  await runChecked('monmaptool', ['--create', '--fsid', fsid, '--addv', 'a', `[v2:127.0.0.1:${monPort}]`, '--enable-all-features', '--clobber', monmap]);
  await tool('ceph-mon', ['--mkfs', '-i', 'a', '--monmap', monmap, '--keyring', keyring]);

  const daemons: ManagedProcess[] = [];
  const stopAll = async (): Promise<void> => {
    // Gateway, then OSD, then monitor: each by the PID we started.
    for (const d of [...daemons].reverse()) await d.stop('SIGTERM', 10_000);
    await removeTmpDir(dir);
  };
  try {
    daemons.push(spawnManaged('ceph-mon', [...c, '-i', 'a', '-f']));
    const commands = [`osd new ${osdUuid} 0`];
    for (const p of POOLS) commands.push(`osd pool create ${p} 8 8`, `osd pool application enable ${p} rgw`);
    // One CLI session for all of them (each `ceph` start costs a connection): it reads commands on stdin.
    const script = join(dir, 'setup.cmds');
    writeFileSync(script, `${commands.join('\n')}\n`);
    await runChecked('sh', ['-c', 'exec ceph -c "$0" --connect-timeout 30 < "$1"', conf, script], { timeoutMs: 60_000 });
    await tool('ceph-osd', ['-i', '0', '--mkfs', '--osd-uuid', osdUuid]);
    daemons.push(spawnManaged('ceph-osd', [...c, '-i', '0', '-f']));
    const accessKeyId = `AK${randomBytes(8).toString('hex').toUpperCase()}`;
    const secretAccessKey = randomBytes(20).toString('hex');
    await tool('radosgw-admin', ['user', 'create', '--uid=regcache-test', '--display-name=regcache test', `--access-key=${accessKeyId}`, `--secret-key=${secretAccessKey}`]);
    daemons.push(spawnManaged('radosgw', [...c, '-n', 'client.rgw.t', '-f']));
    const endpoint = `http://127.0.0.1:${rgwPort}`;
    const region = 'us-east-1';
    const client = (): S3Client => new S3Client({ endpoint, region, forcePathStyle: true, credentials: { accessKeyId, secretAccessKey } });
    const probe = client();
    const deadline = Date.now() + 60_000;
    for (;;) {
      const dead = daemons.find((d) => !d.running);
      if (dead) throw new Error(`${dead.command} exited during start-up: ${dead.stderr().trim().slice(-2000)}`);
      try {
        await probe.send(new ListBucketsCommand({}));
        break;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`the RADOS Gateway did not answer within 60 s: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    probe.destroy();
    return {
      endpoint, region, accessKeyId, secretAccessKey, client, stop: stopAll,
      storageConfig: (bucket) => ({ blobs: 's3', s3Bucket: bucket, s3Endpoint: endpoint, s3Region: region, s3ForcePathStyle: true }),
      env: { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
