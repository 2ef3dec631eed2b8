/**
 * One RegistryClient per registry the copy talks to (and per set of credentials: an auth
 * file may hold `host/namespace` entries), built as an UpstreamConfig from the auth file,
 * `--insecure` hosts and, for sources, regcache's own upstream config (its URL, CA and
 * credentials apply when the auth file has none). Clients are kept for the whole run so
 * connections are reused across images.
 */
import type { Config, UpstreamConfig } from '../config/types.js';
import { isIP } from 'node:net';
import { UpstreamClient, type UpstreamClientOptions } from '../upstream/client.js';
import { RegistryClient } from '../upstream/registry-client.js';
import { USER_AGENT } from '../version.js';
import { credentialsFor, type AuthFile, type Credentials } from './auth-file.js';

export interface RegistrySetOptions {
  auth: AuthFile;
  /** Hosts spoken to over plain HTTP (`--insecure`). */
  insecure: ReadonlySet<string>;
  /** regcache's config: its upstreams' URLs and credentials apply to sources. */
  config?: Config;
  /** Overrides of the client's timeouts (tests). */
  timeouts?: Partial<UpstreamClientOptions['timeouts']>;
}

const DEFAULT_TIMEOUTS: UpstreamClientOptions['timeouts'] = {
  connect: 30_000,
  headers: 300_000,
  idle: 300_000,
  manifestTotal: 120_000,
};

function isLoopback(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '');
  return h === 'localhost' || (isIP(h) === 4 && h.startsWith('127.')) || h === '::1';
}

export class RegistrySet {
  private readonly clients = new Map<string, RegistryClient>();

  constructor(private readonly o: RegistrySetOptions) {}

  private upstreamOf(registry: string): UpstreamConfig | undefined {
    return this.o.config?.upstreams.find((u) => u.host === registry);
  }

  /** The base URL of `registry`. */
  urlOf(registry: string, role: 'source' | 'destination'): string {
    const configured = role === 'source' ? this.upstreamOf(registry) : undefined;
    if (configured) return configured.url;
    if (this.o.insecure.has(registry)) return `http://${registry}`;
    if (registry === 'docker.io') return 'https://registry-1.docker.io';
    return `https://${registry}`;
  }

  private credentials(registry: string, repo: string, role: 'source' | 'destination'): { key: string; creds?: Credentials } {
    const fromFile = credentialsFor(this.o.auth, registry, repo);
    if (fromFile) return { key: `file:${fromFile.username}`, creds: fromFile };
    const up = role === 'source' ? this.upstreamOf(registry) : undefined;
    if (up?.username !== undefined && up.password !== undefined) return { key: 'config', creds: { username: up.username, password: up.password } };
    return { key: 'anonymous' };
  }

  /** The client for `repo` on `registry` in `role`. */
  client(registry: string, repo: string, role: 'source' | 'destination'): RegistryClient {
    const url = this.urlOf(registry, role);
    const { key, creds } = this.credentials(registry, repo, role);
    const id = `${registry}|${url}|${key}`;
    let c = this.clients.get(id);
    if (c) return c;
    const configured = role === 'source' ? this.upstreamOf(registry) : undefined;
    const base = new URL(url);
    const cfg: UpstreamConfig = {
      host: registry,
      url,
      insecureSkipVerify: configured?.insecureSkipVerify ?? false,
      immutableTags: [],
      // A registry on this machine keeps its token realm on this machine too.
      allowedHosts: configured?.allowedHosts ?? (isLoopback(base.hostname) ? ['127.0.0.0/8', '::1', 'localhost'] : []),
      // Only a fill's lent body is read by the socket reader (client.ts, lendBody): a copy streams blobs on with undici.
      blobReader: configured?.blobReader ?? 'socket',
    };
    if (configured?.ca) cfg.ca = configured.ca;
    if (creds) {
      cfg.username = creds.username;
      cfg.password = creds.password;
    }
    c = new RegistryClient(new UpstreamClient(cfg, {
      timeouts: { ...DEFAULT_TIMEOUTS, ...this.o.timeouts },
      // A copy retries on its own terms (retry.ts): never fail fast because of earlier failures.
      health: { maxFails: Number.MAX_SAFE_INTEGER, failTimeout: 0 },
      userAgent: `${USER_AGENT} copy`,
    }));
    this.clients.set(id, c);
    return c;
  }

  async close(): Promise<void> {
    await Promise.all([...this.clients.values()].map((c) => c.transport.close()));
  }
}
