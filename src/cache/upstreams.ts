/**
 * The set of configured upstream clients, replaceable at run time (config reload): added
 * hosts start serving, removed ones stop taking new requests while their in-flight
 * requests finish, changed ones get a new client.
 */
import type { UpstreamConfig } from '../config/types.js';
import { OciError } from '../protocol/errors.js';
import { UpstreamClient, type UpstreamClientOptions } from '../upstream/client.js';

export class Upstreams {
  private clients = new Map<string, UpstreamClient>();
  private hostSet: ReadonlySet<string> = new Set();

  constructor(configs: UpstreamConfig[], private readonly opts: UpstreamClientOptions) {
    this.update(configs);
  }

  get hosts(): ReadonlySet<string> {
    return this.hostSet;
  }

  get(host: string): UpstreamClient {
    const c = this.clients.get(host);
    if (!c) throw new OciError('NAME_UNKNOWN', `registry ${host} is not a configured upstream`);
    return c;
  }

  all(): UpstreamClient[] {
    return [...this.clients.values()];
  }

  /** Applies a new upstream list; returns what changed. */
  update(configs: UpstreamConfig[]): { added: string[]; removed: string[]; changed: string[] } {
    const next = new Map<string, UpstreamClient>();
    const added: string[] = [];
    const changed: string[] = [];
    for (const cfg of configs) {
      const old = this.clients.get(cfg.host);
      if (old && JSON.stringify(old.config) === JSON.stringify(cfg)) {
        next.set(cfg.host, old);
        continue;
      }
      next.set(cfg.host, new UpstreamClient(cfg, this.opts));
      (old ? changed : added).push(cfg.host);
      if (old) void old.close();
    }
    const removed = [...this.clients.keys()].filter((h) => !next.has(h));
    for (const h of removed) void this.clients.get(h)!.close();
    this.clients = next;
    this.hostSet = new Set(next.keys());
    return { added, removed, changed };
  }

  async close(): Promise<void> {
    await Promise.all(this.all().map((c) => c.close()));
  }

  async destroy(): Promise<void> {
    await Promise.all(this.all().map((c) => c.destroy()));
  }
}
