/**
 * The systems under comparison, each started fresh on loopback and registered for cleanup:
 * - the upstream: Debian's docker-registry (distribution 2.8) with filesystem storage;
 * - regcache (dist/cli.js) behind its own counting forwarder to the upstream;
 * - distribution's pull-through proxy (docker-registry with `proxy.remoteurl`) behind its own forwarder;
 * - "direct": a forwarder straight to the upstream (the floor for cold pulls);
 * - nginx serving the same files statically (the ceiling for warm pulls).
 */
import { rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  freePort,
  liveChildren,
  spawnManaged,
  startForwarder,
  startRegcache,
  startRegistry,
  tmpDir,
  waitForHttp,
  type Forwarder,
  type Registry,
} from '../../../test/helpers/index.js';
import { reapPid } from '../../../test/helpers/reaper.js';
import { onCleanup } from './cleanup.js';
import { childPids } from './proc.js';

export type SystemName = 'regcache' | 'distribution' | 'nginx' | 'direct';

export interface System {
  name: SystemName;
  /** Base URL clients use (`http://127.0.0.1:PORT`). */
  url: string;
  /** The serving process (undefined for direct, which is the forwarder in this process). */
  pid?: number;
  /** The forwarder between this system and the upstream (undefined for nginx). */
  fwd?: Forwarder;
  stop(): Promise<void>;
}

export interface UpstreamOptions {
  logLevel?: string;
}

/** The upstream registry (access log off at levels above info: it is not under test). */
export async function startUpstream(opts: UpstreamOptions = {}): Promise<Registry> {
  const level = opts.logLevel ?? 'warn';
  const reg = await startRegistry({
    extraConfig: { log: { level, formatter: 'text', accesslog: { disabled: level !== 'info' && level !== 'debug' } } },
  });
  onCleanup('upstream docker-registry', () => reg.stop());
  return reg;
}

export interface RegcacheOptions {
  tagTTL?: string;
  logLevel?: string;
  /** Extra environment (e.g. NODE_OPTIONS=--cpu-prof ...). */
  env?: Record<string, string>;
}

function pidOf(configPath: string): number | undefined {
  return liveChildren().find((p) => p.args.includes(configPath))?.pid;
}

export async function startRegcacheSystem(upstream: Registry, opts: RegcacheOptions = {}): Promise<System> {
  const fwd = await startForwarder(upstream);
  const unFwd = onCleanup('regcache forwarder', () => fwd.close());
  const rc = await startRegcache({
    config: {
      logLevel: opts.logLevel ?? 'info',
      cache: { tagTTL: opts.tagTTL ?? '1h' },
      upstreams: { 'bench.upstream': { url: fwd.url } },
      defaultUpstream: 'bench.upstream',
      server: { shutdownGrace: '5s' },
    },
    env: opts.env,
  });
  const stopRc = async (): Promise<void> => {
    await rc.stop('SIGTERM', 10_000);
  };
  const unRc = onCleanup('regcache', stopRc);
  return {
    name: 'regcache',
    url: rc.url,
    pid: rc.proc.pid,
    fwd,
    async stop() {
      await stopRc();
      unRc();
      await fwd.close();
      unFwd();
      rmSync(rc.dataDir, { recursive: true, force: true });
    },
  };
}

export interface DistributionOptions {
  logLevel?: string;
}

export async function startDistributionSystem(upstream: Registry, opts: DistributionOptions = {}): Promise<System> {
  const fwd = await startForwarder(upstream);
  const unFwd = onCleanup('distribution forwarder', () => fwd.close());
  const level = opts.logLevel ?? 'info';
  const reg = await startRegistry({
    extraConfig: {
      proxy: { remoteurl: fwd.url },
      log: { level, formatter: 'text', accesslog: { disabled: level !== 'info' && level !== 'debug' } },
    },
  });
  const unReg = onCleanup('distribution proxy', () => reg.stop());
  return {
    name: 'distribution',
    url: reg.url,
    pid: pidOf(reg.configPath),
    fwd,
    async stop() {
      await reg.stop();
      unReg();
      await fwd.close();
      unFwd();
      rmSync(reg.storageDir, { recursive: true, force: true });
    },
  };
}

/** A forwarder straight to the upstream: the same network path without a proxy. */
export async function startDirectSystem(upstream: Registry): Promise<System> {
  const fwd = await startForwarder(upstream);
  const un = onCleanup('direct forwarder', () => fwd.close());
  return {
    name: 'direct',
    url: fwd.url,
    fwd,
    async stop() {
      await fwd.close();
      un();
    },
  };
}

export interface NginxOptions {
  /** Directory with v2/<repo>/{blobs,manifests}/<name> files. */
  root: string;
  /** Paths (exact) served as OCI index manifests; other manifests are OCI image manifests. */
  indexPaths: string[];
  workers?: number;
}

/** nginx (master + `workers` workers, as root) serving `root` statically, configured like a tuned static server. */
export async function startNginxSystem(opts: NginxOptions): Promise<System> {
  const dir = tmpDir('regcache-bench-nginx-');
  for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, d));
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  const indexLocations = opts.indexPaths
    .map((p) => `    location = ${p} { default_type application/vnd.oci.image.index.v1+json; }`)
    .join('\n');
  writeFileSync(
    conf,
    `# generated by scripts/bench (regcache benchmark)
user root;
worker_processes ${opts.workers ?? 2};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    client_body_temp_path ${dir}/client_body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;
    types { }
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:${port};
        root ${opts.root};
        location ~ ^/v2/.+/manifests/ { default_type application/vnd.oci.image.manifest.v1+json; }
${indexLocations}
        location = /v2/ { default_type application/json; return 200 '{}'; }
    }
}
`,
  );
  const p = spawnManaged('nginx', ['-p', dir, '-e', join(dir, 'error.log'), '-c', conf, '-g', 'daemon off;'], { cwd: dir });
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    // SIGQUIT = graceful; the master stops its workers. SIGKILL after 5 s (workers then exit on their own
    // when they notice the master is gone; the reaper also knows their pids).
    await p.stop('SIGQUIT', 5_000);
  };
  const un = onCleanup('nginx', stop);
  try {
    await waitForHttp(`${url}/v2/`, {
      timeoutMs: 10_000,
      abortIf: () => (p.running ? undefined : `nginx exited (code ${p.exitResult?.code}): ${p.stderr()}`),
    });
  } catch (e) {
    await stop();
    un();
    throw new Error(`nginx did not start: ${(e as Error).message}\n${p.stderr()}`);
  }
  for (const w of childPids(p.pid!)) reapPid(w);
  return {
    name: 'nginx',
    url,
    pid: p.pid,
    async stop() {
      await stop();
      un();
    },
  };
}
