/**
 * The listeners as a service: the main one, one per upstream with a `port`, and the
 * optional metrics listener. A reload opens and closes per-host ports to match the config
 * and reports a port that would not bind as a change that did not apply.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import type { ReloadResult, Service } from '../service.js';
import { createHandler } from './handler.js';
import { ConnectionPool } from './connection-pool.js';
import { closeListener, createServer, listen, type Listener } from './listeners.js';
import type { HttpDeps } from './route.js';

export class HttpService implements Service {
  readonly name = 'http';
  listeners: Listener[] = [];
  /** One connection limit across every listener (server.maxConnections). */
  private readonly pool: ConnectionPool;

  constructor(private config: Config, private readonly deps: HttpDeps, private readonly log: Logger) {
    this.pool = new ConnectionPool(config.server.maxConnections);
  }

  get mainPort(): number | undefined {
    return this.listeners.find((l) => l.name === 'main')?.port;
  }

  async start(): Promise<void> {
    const cfg = this.config;
    const main = createServer(cfg, createHandler(this.deps, { serveMetrics: cfg.metrics.listen === undefined }), this.pool);
    try {
      this.listeners.push(await listen({ name: 'main', host: cfg.listen.host, port: cfg.listen.port, server: main }));
      for (const u of cfg.upstreams) {
        if (u.port !== undefined) await this.addPortListener(u.host, u.port);
      }
      if (cfg.metrics.listen) {
        const ms = createServer(cfg, createHandler(this.deps, { serveMetrics: true }), this.pool);
        this.listeners.push(await listen({ name: 'metrics', host: cfg.metrics.listen.host, port: cfg.metrics.listen.port, server: ms }));
      }
    } catch (err) {
      await this.stop(0);
      throw err;
    }
  }

  private async addPortListener(upstream: string, port: number): Promise<void> {
    const server = createServer(this.config, createHandler(this.deps, { serveMetrics: false, fixedHost: upstream }), this.pool);
    this.listeners.push(await listen({ name: `upstream ${upstream}`, host: this.config.listen.host, port, server, upstream }));
  }

  async stop(graceMs: number): Promise<void> {
    const ls = this.listeners;
    this.listeners = [];
    await Promise.all(ls.map((l) => closeListener(l, graceMs)));
  }

  async reload(next: Config): Promise<ReloadResult> {
    this.config = next;
    const failed: string[] = [];
    // Per-host ports: close listeners whose upstream or port went away, open new ones.
    const wanted = new Map(next.upstreams.filter((u) => u.port !== undefined).map((u) => [u.host, u.port!]));
    const keep: Listener[] = [];
    for (const l of this.listeners) {
      if (l.upstream !== undefined && wanted.get(l.upstream) !== l.port) {
        void closeListener(l, next.server.shutdownGrace);
        continue;
      }
      keep.push(l);
    }
    this.listeners = keep;
    for (const [host, port] of wanted) {
      if (this.listeners.some((l) => l.upstream === host)) continue;
      try {
        await this.addPortListener(host, port);
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'config reload: cannot open port');
        failed.push(`upstreams.${host}.port`);
      }
    }
    return { restartNeeded: [], failed };
  }

  async status(): Promise<Record<string, unknown>> {
    return { listeners: this.listeners.map((l) => `${l.name}=${l.host}:${l.port}`) };
  }
}
