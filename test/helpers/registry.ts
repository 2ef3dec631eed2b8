/**
 * A real upstream registry for tests: docker-registry (distribution 2.8) on 127.0.0.1 with filesystem storage,
 * optionally behind htpasswd (Basic) or token (Bearer) auth.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { spawnManaged, type ManagedProcess } from './children.js';
import { htpasswdLine } from './htpasswd.js';
import { waitForHttp } from './http-probe.js';
import { freePort } from './ports.js';
import { tmpDir } from './tmp.js';

export interface RegistryTokenAuth {
  realm: string;
  service: string;
  issuer: string;
  certPath: string;
}

export interface RegistryOptions {
  auth?: 'htpasswd' | 'token';
  /** Required with auth 'token'; a TokenIssuer fits as is. */
  tokenIssuer?: RegistryTokenAuth;
  /** Credentials for auth 'htpasswd' (default user/password). */
  htpasswd?: { user: string; password: string };
  /** Storage root (default: a fresh temp dir). Reuse one to start a registry on existing content. */
  storageDir?: string;
  /** Top-level keys merged over the generated config (e.g. `{ log: { level: 'debug' } }`). */
  extraConfig?: Record<string, unknown>;
  /** Readiness timeout (default 15 s). */
  startTimeoutMs?: number;
  /** Listen on this port (default: a free one). */
  port?: number;
}

export interface Registry {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** `127.0.0.1:PORT` */
  host: string;
  port: number;
  storageDir: string;
  configPath: string;
  /** Basic credentials with auth 'htpasswd'. */
  credentials?: { user: string; password: string };
  /** Stops the process (SIGTERM, SIGKILL after 5 s). Files stay until cleanupAll()/exit, so restart() still works. */
  stop(): Promise<void>;
  /** Stops (if running) and starts again on the same port, config and storage. */
  restart(): Promise<void>;
  /** True while the registry process runs. */
  readonly running: boolean;
  /** Everything the registry printed (it logs to stderr) across all its runs. */
  logs(): string;
}

export async function startRegistry(opts: RegistryOptions = {}): Promise<Registry> {
  const port = opts.port ?? await freePort();
  const dir = tmpDir('regcache-registry-');
  const storageDir = opts.storageDir ?? join(dir, 'storage');
  mkdirSync(storageDir, { recursive: true });
  const host = `127.0.0.1:${port}`;
  const url = `http://${host}`;

  const config: Record<string, unknown> = {
    version: 0.1,
    log: { level: 'info', formatter: 'text', accesslog: { disabled: false } },
    storage: {
      filesystem: { rootdirectory: storageDir },
      delete: { enabled: true },
      cache: { blobdescriptor: 'inmemory' },
      maintenance: { uploadpurging: { enabled: false }, readonly: { enabled: false } },
    },
    http: { addr: host, secret: 'regcache-test-secret', headers: { 'X-Content-Type-Options': ['nosniff'] } },
    health: { storagedriver: { enabled: false } },
  };

  let credentials: Registry['credentials'];
  if (opts.auth === 'htpasswd') {
    credentials = opts.htpasswd ?? { user: 'user', password: 'password' };
    const htpasswdPath = join(dir, 'htpasswd');
    writeFileSync(htpasswdPath, `${await htpasswdLine(credentials.user, credentials.password)}\n`);
    config.auth = { htpasswd: { realm: 'regcache-test', path: htpasswdPath } };
  } else if (opts.auth === 'token') {
    const t = opts.tokenIssuer;
    if (!t) throw new Error("startRegistry: auth 'token' needs tokenIssuer");
    config.auth = { token: { realm: t.realm, service: t.service, issuer: t.issuer, rootcertbundle: t.certPath } };
  }
  Object.assign(config, opts.extraConfig);
  const configPath = join(dir, 'config.yml');
  writeFileSync(configPath, stringify(config));

  const runs: ManagedProcess[] = [];
  let current: ManagedProcess | undefined;

  const start = async (): Promise<void> => {
    const p = spawnManaged('docker-registry', ['serve', configPath], { cwd: dir });
    current = p;
    runs.push(p);
    try {
      await waitForHttp(`${url}/v2/`, {
        timeoutMs: opts.startTimeoutMs ?? 15_000,
        ready: (s) => s === 200 || s === 401,
        ...(p.proc.pid !== undefined ? { answeredBy: p.proc.pid } : {}),
        abortIf: () =>
          p.running
            ? undefined
            : `docker-registry exited before it was ready (code ${p.exitResult?.code}, signal ${p.exitResult?.signal})` +
              `${p.spawnError ? `: ${p.spawnError.message}` : ''}\n${p.stderr()}`,
      });
    } catch (e) {
      await p.stop('SIGKILL');
      throw new Error(`docker-registry on ${host} did not start: ${(e as Error).message}\nstderr:\n${p.stderr()}`);
    }
  };

  const stop = async (): Promise<void> => {
    if (current) await current.stop('SIGTERM', 5_000);
  };

  await start();
  return {
    url,
    host,
    port,
    storageDir,
    configPath,
    credentials,
    stop,
    async restart() {
      await stop();
      await start();
    },
    get running() {
      return current?.running ?? false;
    },
    logs: () => runs.map((p) => p.stdout() + p.stderr()).join(''),
  };
}
