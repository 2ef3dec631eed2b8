/**
 * Namespace: maps what a request names — the listener it arrived on (a per-host port
 * fixes the upstream), its `?ns=` and its repository name — to one Repository. The routing
 * rules themselves are pure (protocol/namespace.ts); this adds the repositories:
 *  1. regcache's own registry names (`hosted.names`): `?ns=<own>` or a first component
 *     `<own>/`: the rest is a hosted name (NAME_UNKNOWN when no pattern matches it);
 *  2. a name with no host (no port, no ns, first component not a configured host) that a
 *     hosted pattern matches (`team/**`): a hosted repository, never sent upstream;
 *  3. otherwise the upstream routing; when `<upstream>/<repo>` matches a hosted pattern
 *     (`docker.io/myorg/**`), the hosted repository overlays the proxy one (overlay-repository.ts);
 *  4. else the proxy repository.
 */
import { OciError } from '../protocol/errors.js';
import { assertValidName } from '../protocol/paths.js';
import { resolveNamespace } from '../protocol/namespace.js';
import type { Hosted } from './hosted/hosted.js';
import { OverlayRepository } from './hosted/overlay-repository.js';
import type { Proxy } from './proxy/proxy.js';
import type { Repository } from './repository.js';

export interface ListenerContext {
  /** The upstream a per-host port serves, if any. */
  fixedHost?: string | undefined;
}

/** Where a request's repository name leads, before any Repository is built. */
export type Placement =
  | { kind: 'hosted'; full: string }
  | { kind: 'overlay'; full: string; upstream: string; repo: string }
  | { kind: 'proxy'; full: string; upstream: string; repo: string };

export class Namespace {
  constructor(private readonly proxy: Proxy, private readonly defaultUpstream: () => string | undefined, private readonly hosted?: Hosted) {}

  /** Configured upstream hosts. */
  get hosts(): ReadonlySet<string> {
    return this.proxy.upstreams.hosts;
  }

  /** Which kind of repository a name is, and its full name (what hosted patterns and access rules match). */
  place(listener: ListenerContext, ns: string | undefined, name: string): Placement {
    const h = this.hosted;
    if (h && listener.fixedHost === undefined) {
      let own: string | undefined;
      if (ns !== undefined && h.names.has(ns)) own = name;
      else if (ns === undefined) {
        const slash = name.indexOf('/');
        if (slash > 0 && h.names.has(name.slice(0, slash))) own = name.slice(slash + 1);
      }
      if (own !== undefined) {
        assertValidName(own);
        if (!h.match(own)) throw new OciError('NAME_UNKNOWN', `${own} is not a hosted repository (hostedRepositories)`, { name: own });
        return { kind: 'hosted', full: own };
      }
      if (ns === undefined) {
        const slash = name.indexOf('/');
        const first = slash === -1 ? undefined : name.slice(0, slash);
        if ((first === undefined || !this.hosts.has(first)) && h.match(name)) {
          assertValidName(name);
          return { kind: 'hosted', full: name };
        }
      }
    }
    const r = resolveNamespace(name, ns, { hosts: this.hosts, fixedHost: listener.fixedHost, defaultHost: this.defaultUpstream() });
    const full = `${r.upstream}/${r.repo}`;
    return { kind: h?.match(full) ? 'overlay' : 'proxy', full, upstream: r.upstream, repo: r.repo };
  }

  resolve(listener: ListenerContext, ns: string | undefined, name: string): Repository {
    const p = this.place(listener, ns, name);
    if (p.kind === 'proxy') return this.proxy.repository({ upstream: p.upstream, repo: p.repo });
    const hosted = this.hosted!.repository(p.full, this.hosted!.match(p.full)!);
    if (p.kind === 'hosted') return hosted;
    return new OverlayRepository(hosted, this.proxy.repository({ upstream: p.upstream, repo: p.repo }));
  }
}
