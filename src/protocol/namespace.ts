/**
 * Decides which configured upstream a repository request goes to, and the repository name
 * there. Order (fixed): the listener's own upstream (per-host ports), then `?ns=`, then a
 * first path component equal to a configured host, then defaultUpstream. Only configured
 * hosts can ever be chosen: nothing in a request can name another destination.
 * A first component that looks like a registry host but is not configured is refused
 * rather than passed to defaultUpstream inside the repository name, which would leak a
 * private registry's name (and repository) to, say, Docker Hub.
 */
import { OciError } from './errors.js';
import { assertValidName } from './paths.js';

export interface NamespaceOptions {
  /** Configured upstream hosts. */
  hosts: ReadonlySet<string>;
  /** The upstream bound to this listener (per-host port), if any. */
  fixedHost?: string | undefined;
  defaultHost?: string | undefined;
}

export interface Resolved {
  upstream: string;
  repo: string;
}

/**
 * Docker's reference rule: a first component with `.` or `:`, or `localhost`, is a registry
 * host. Docker Hub namespaces never look like this, so such a prefix is never meant for it.
 */
const HOST_SYNTAX = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::\d{1,5})?$/i;

export function looksLikeHost(component: string): boolean {
  if (!HOST_SYNTAX.test(component)) return false; // `..` and other junk: the name grammar answers
  return component === 'localhost' || component.includes('.') || component.includes(':');
}

/** Docker Hub's official images live under library/. */
function normalise(upstream: string, repo: string): string {
  if (upstream === 'docker.io' && !repo.includes('/')) return `library/${repo}`;
  return repo;
}

export function resolveNamespace(name: string, ns: string | undefined, opts: NamespaceOptions): Resolved {
  let upstream: string | undefined;
  let repo = name;
  if (opts.fixedHost !== undefined) {
    upstream = opts.fixedHost;
    if (ns !== undefined && ns !== opts.fixedHost) {
      throw new OciError('NAME_UNKNOWN', `this port serves ${opts.fixedHost}, not ${ns.slice(0, 255)}`);
    }
  } else if (ns !== undefined) {
    if (!opts.hosts.has(ns)) throw new OciError('NAME_UNKNOWN', `registry ${ns.slice(0, 255)} is not a configured upstream`);
    upstream = ns;
  } else {
    const slash = name.indexOf('/');
    const first = slash === -1 ? undefined : name.slice(0, slash);
    if (first !== undefined && opts.hosts.has(first)) {
      upstream = first;
      repo = name.slice(slash + 1);
    } else if (first !== undefined && looksLikeHost(first)) {
      throw new OciError('NAME_UNKNOWN', `registry ${first.slice(0, 255)} is not a configured upstream`);
    } else if (opts.defaultHost !== undefined) {
      upstream = opts.defaultHost;
    } else {
      assertValidName(name);
      throw new OciError('NAME_UNKNOWN', 'no upstream for this repository: use ?ns=<registry> or a /v2/<registry>/... prefix');
    }
  }
  assertValidName(repo);
  return { upstream, repo: normalise(upstream, repo) };
}
