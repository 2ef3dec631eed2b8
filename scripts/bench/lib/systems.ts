/**
 * The systems under comparison, each started fresh on loopback and registered for cleanup:
 * - the upstream: Debian's docker-registry (distribution 2.8) with filesystem storage;
 * - regcache (dist/cli.js) behind its own counting forwarder to the upstream;
 * - distribution's pull-through proxy (docker-registry with `proxy.remoteurl`) behind its own forwarder;
 * - "direct": a forwarder straight to the upstream (the floor for cold pulls);
 * - nginx serving the same files statically (the ceiling for warm pulls).
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import {
  CLI_PATH,
  REPO_ROOT,
  freePort,
  spawnManaged,
  startForwarder,
  startRegistry,
  tmpDir,
  waitForHttp,
  type Forwarder,
  type Registry,
} from '../../../test/helpers/index.js';
import { reapPid } from '../../../test/helpers/reaper.js';
import { onCleanup } from './cleanup.js';
import { childPids } from './proc.js';

/**
 * The node flags regcache is deployed with (package.json `start`, the bin's shebang, the Dockerfile's
 * NODE_OPTIONS), for serve and copy alike: the bench measures what runs. A small young generation frees socket read buffers sooner.
 */
export const SERVE_NODE_FLAGS = ['--max-semi-space-size=2'];

export type SystemName = 'regcache' | 'distribution' | 'nginx' | 'direct';

export interface System {
  name: SystemName;
  /** Base URL clients use (`http://127.0.0.1:PORT`). */
  url: string;
  /** The serving process (undefined for direct, which is the forwarder in this process). */
  pid?: number;
  /** The forwarder between this system and the upstream (undefined for nginx). */
  fwd?: Forwarder;
  /** Where the system's own log goes, when it is a file. */
  logFile?: string;
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
  /** Node flags before dist/cli.js (e.g. --cpu-prof, which NODE_OPTIONS does not allow). */
  nodeArgs?: string[];
  /** Extra config keys. */
  config?: Record<string, unknown>;
  /** How long to wait for it to answer (default 15 s; a large store takes longer to check at start). */
  startTimeoutMs?: number;
  /** How long stop() waits after SIGTERM before SIGKILL (default 10 s; a large store's final checkpoint takes longer). */
  stopTimeoutMs?: number;
  /**
   * Talk to the upstream directly, without the forwarder that counts upstream bytes (scenario 8 counts none, and
   * carrying its fills cost this process ~0.3 CPU-s of the 2 cores while the latency probe ran).
   */
  noForwarder?: boolean;
}

/**
 * `node [nodeArgs] dist/cli.js serve --config FILE` on a free port with a fresh data dir, behind its own forwarder.
 * (Like the test helpers' startRegcache, plus node flags.)
 */
export async function startRegcacheSystem(upstream: Registry, opts: RegcacheOptions = {}): Promise<System> {
  const fwd = opts.noForwarder ? undefined : await startForwarder(upstream);
  const unFwd = fwd ? onCleanup('regcache forwarder', () => fwd.close()) : () => undefined;
  const port = await freePort();
  const dir = tmpDir('regcache-bench-rc-');
  const dataDir = join(dir, 'data');
  const configPath = join(dir, 'regcache.yaml');
  writeFileSync(
    configPath,
    stringify({
      listen: `127.0.0.1:${port}`,
      dataDir,
      logLevel: opts.logLevel ?? 'info',
      logFormat: 'json',
      cache: { tagTTL: opts.tagTTL ?? '1h' },
      upstreams: { 'bench.upstream': { url: fwd?.url ?? upstream.url } },
      defaultUpstream: 'bench.upstream',
      server: { shutdownGrace: '5s' },
      ...opts.config,
    }),
  );
  // Logs go to a file, as a deployment would ship them, not through a pipe into this (busy) process.
  const p = spawnManaged('sh', ['-c', `exec "$0" "$@" >>${dir}/regcache.log 2>&1`, process.execPath, ...SERVE_NODE_FLAGS, ...(opts.nodeArgs ?? []), CLI_PATH, 'serve', '--config', configPath], { cwd: REPO_ROOT });
  const url = `http://127.0.0.1:${port}`;
  const stopRc = async (): Promise<void> => {
    await p.stop('SIGTERM', opts.stopTimeoutMs ?? 10_000);
  };
  const unRc = onCleanup('regcache', stopRc);
  try {
    await waitForHttp(`${url}/v2/`, {
      timeoutMs: opts.startTimeoutMs ?? 15_000,
      abortIf: () => (p.running ? undefined : `regcache exited (code ${p.exitResult?.code}): ${readLog(dir)}`),
    });
  } catch (e) {
    await stopRc();
    unRc();
    await fwd?.close();
    unFwd();
    throw new Error(`regcache did not start: ${(e as Error).message}`);
  }
  return {
    name: 'regcache',
    url,
    pid: p.pid,
    ...(fwd ? { fwd } : {}),
    logFile: join(dir, 'regcache.log'),
    async stop() {
      await stopRc();
      unRc();
      await fwd?.close();
      unFwd();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function readLog(dir: string, name = 'regcache.log'): string {
  try {
    return readFileSync(join(dir, name), 'utf8').slice(-4000);
  } catch {
    return '';
  }
}

export interface DistributionOptions {
  logLevel?: string;
}

/**
 * distribution's pull-through cache: `docker-registry serve CONFIG` with `proxy.remoteurl` = its own forwarder to the
 * upstream, fresh filesystem storage, logging (access log included at info) to a file like regcache.
 */
export async function startDistributionSystem(upstream: Registry, opts: DistributionOptions = {}): Promise<System> {
  const fwd = await startForwarder(upstream);
  const unFwd = onCleanup('distribution forwarder', () => fwd.close());
  const level = opts.logLevel ?? 'info';
  const port = await freePort();
  const dir = tmpDir('regcache-bench-dist-');
  const storage = join(dir, 'storage');
  mkdirSync(storage);
  const configPath = join(dir, 'config.yml');
  writeFileSync(
    configPath,
    stringify({
      version: 0.1,
      log: { level: ['silent', 'fatal'].includes(level) ? 'error' : level, formatter: 'text', accesslog: { disabled: !['info', 'debug'].includes(level) } },
      storage: { filesystem: { rootdirectory: storage }, delete: { enabled: true }, cache: { blobdescriptor: 'inmemory' } },
      http: { addr: `127.0.0.1:${port}`, secret: 'regcache-bench-secret' },
      health: { storagedriver: { enabled: false } },
      proxy: { remoteurl: fwd.url },
    }),
  );
  const p = spawnManaged('sh', ['-c', `exec "$0" "$@" >>${dir}/registry.log 2>&1`, 'docker-registry', 'serve', configPath], { cwd: dir });
  const url = `http://127.0.0.1:${port}`;
  const stopReg = async (): Promise<void> => {
    await p.stop('SIGTERM', 5_000);
  };
  const unReg = onCleanup('distribution proxy', stopReg);
  try {
    await waitForHttp(`${url}/v2/`, {
      timeoutMs: 15_000,
      abortIf: () => (p.running ? undefined : `docker-registry exited (code ${p.exitResult?.code}): ${readLog(dir, 'registry.log')}`),
    });
  } catch (e) {
    await stopReg();
    unReg();
    await fwd.close();
    unFwd();
    throw new Error(`distribution proxy did not start: ${(e as Error).message}`);
  }
  return {
    name: 'distribution',
    url,
    pid: p.pid,
    fwd,
    logFile: join(dir, 'registry.log'),
    async stop() {
      await stopReg();
      unReg();
      await fwd.close();
      unFwd();
      rmSync(storage, { recursive: true, force: true });
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
  let workers: number[] = [];
  const stop = async (): Promise<void> => {
    // SIGTERM = fast shutdown (SIGQUIT would wait for open transfers); the master stops its workers. Any worker
    // still there afterwards (master SIGKILLed after 5 s) is killed by pid.
    await p.stop('SIGTERM', 5_000);
    for (const w of workers) {
      try {
        if (readFileSync(`/proc/${w}/cmdline`, 'utf8').startsWith('nginx')) process.kill(w, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
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
  workers = childPids(p.pid!);
  for (const w of workers) reapPid(w);
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
