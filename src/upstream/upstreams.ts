/**
 * The set of configured upstream registries, replaceable at run time (config reload):
 * added hosts start serving, removed ones stop taking new requests while their in-flight
 * requests finish, changed ones get a new client.
 */
import type { Config, UpstreamConfig } from '../config/types.js';
import type { ReloadResult, Service } from '../service.js';
import { OciError } from '../protocol/errors.js';
import { UpstreamClient, type UpstreamClientOptions } from './client.js';
import { RegistryClient } from './registry-client.js';

export class Upstreams implements Service {
  readonly name = 'upstreams';
  private clients = new Map<string, RegistryClient>();
  private hostSet: ReadonlySet<string> = new Set();

  constructor(private readonly opts: UpstreamClientOptions, private readonly initial: UpstreamConfig[]) {}

  get hosts(): ReadonlySet<string> {
    return this.hostSet;
  }

  get(host: string): RegistryClient {
    const c = this.clients.get(host);
    if (!c) throw new OciError('NAME_UNKNOWN', `registry ${host} is not a configured upstream`);
    return c;
  }

  all(): RegistryClient[] {
    return [...this.clients.values()];
  }

  /** Applies a new upstream list; returns what changed. */
  update(configs: UpstreamConfig[]): { added: string[]; removed: string[]; changed: string[] } {
    const next = new Map<string, RegistryClient>();
    const added: string[] = [];
    const changed: string[] = [];
    for (const cfg of configs) {
      const old = this.clients.get(cfg.host);
      if (old && JSON.stringify(old.transport.config) === JSON.stringify(cfg)) {
        next.set(cfg.host, old);
        continue;
      }
      next.set(cfg.host, new RegistryClient(new UpstreamClient(cfg, this.opts)));
      (old ? changed : added).push(cfg.host);
      if (old) void old.transport.close();
    }
    const removed = [...this.clients.keys()].filter((h) => !next.has(h));
    for (const h of removed) void this.clients.get(h)!.transport.close();
    this.clients = next;
    this.hostSet = new Set(next.keys());
    return { added, removed, changed };
  }

  /** Builds the clients (reading CA files); they connect lazily, on their first request. */
  async start(): Promise<void> {
    this.update(this.initial);
  }

  /** Cuts in-flight upstream requests (the listeners have drained by now). */
  async stop(): Promise<void> {
    await Promise.all(this.all().map((c) => c.transport.destroy()));
  }

  async reload(next: Config): Promise<ReloadResult> {
    return { restartNeeded: [], failed: [], changes: this.update(next.upstreams) };
  }

  async status(): Promise<Record<string, unknown>> {
    return Object.fromEntries(this.all().map((c) => [c.host, { up: !c.health.isDown }]));
  }
}
