/**
 * Namespace: maps what a request names — the listener it arrived on (a per-host port
 * fixes the upstream), its `?ns=` and its repository name — to one Repository. The routing
 * rules themselves are pure (protocol/namespace.ts); this adds the repositories.
 */
import { resolveNamespace } from '../protocol/namespace.js';
import type { Proxy } from './proxy/proxy.js';
import type { Repository } from './repository.js';

export interface ListenerContext {
  /** The upstream a per-host port serves, if any. */
  fixedHost?: string | undefined;
}

export class Namespace {
  constructor(private readonly proxy: Proxy, private readonly defaultUpstream: () => string | undefined) {}

  /** Configured upstream hosts. */
  get hosts(): ReadonlySet<string> {
    return this.proxy.upstreams.hosts;
  }

  resolve(listener: ListenerContext, ns: string | undefined, name: string): Repository {
    const r = resolveNamespace(name, ns, { hosts: this.hosts, fixedHost: listener.fixedHost, defaultHost: this.defaultUpstream() });
    return this.proxy.repository({ upstream: r.upstream, repo: r.repo });
  }
}
