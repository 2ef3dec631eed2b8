/**
 * Host, URL and port rules, shared by config validation and `regcache mirror add` so the two
 * can never disagree. Each rule returns a problem (a message without the key) or undefined;
 * the caller prefixes the key and picks its error type.
 */
import { parseCidr } from '../protocol/ip-ranges.js';
import type { Config, HostPort } from './types.js';

// A registry host as image names and containerd's certs.d use it: lowercase `host[:port]`.
const REGISTRY_HOST_RE = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*(?::(\d{1,5}))?$/;

export function registryHostProblem(host: string): string | undefined {
  const m = REGISTRY_HOST_RE.exec(host);
  if (!m || (m[1] !== undefined && !isPort(Number(m[1])))) {
    return `invalid registry host ${JSON.stringify(host)}: use a lowercase host[:port], e.g. ghcr.io or myreg.local:5000`;
  }
  return undefined;
}

export function isPort(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;
}

/**
 * An upstream URL is the registry's API base: http(s), no credentials (they go in
 * username/password, which are never logged), no query or fragment, and no `/v2` at the end:
 * regcache appends `/v2/...` itself, so `https://host/v2/` would send every request to
 * `/v2/v2/...` and 404. Returns the normalised URL (no trailing slash) or a problem.
 */
export function parseUpstreamUrl(url: string): { url: string } | { problem: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { problem: `not a URL: ${JSON.stringify(url)}` };
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return { problem: `${JSON.stringify(url)} must be http:// or https://` };
  if (u.username || u.password) return { problem: 'must not carry credentials; put username/password in the upstream entry instead' };
  if (u.search || u.hash) return { problem: `${JSON.stringify(url)} must have no query or fragment` };
  const base = u.toString().replace(/\/+$/, '');
  if (/\/v2$/i.test(new URL(base).pathname)) {
    return { problem: `${JSON.stringify(url)} ends in /v2: give the registry base URL (${base.replace(/\/v2$/i, '')}); regcache adds /v2/ itself` };
  }
  return { url: base };
}

const DNS_NAME_RE = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/** An `allowedHosts` entry: a DNS name, an IP address, or an IP/prefix CIDR. */
export function allowedHostProblem(entry: string): string | undefined {
  // The same parser the address policy matches with (upstream/address-policy.ts).
  if (entry.includes('/')) return parseCidr(entry) ? undefined : `invalid CIDR ${JSON.stringify(entry)}`;
  if (parseCidr(entry) || DNS_NAME_RE.test(entry)) return undefined;
  return `invalid host ${JSON.stringify(entry)}: use a host name, an IP address or a CIDR (10.0.0.0/8)`;
}

/** `HOST:PORT`, `[v6]:PORT`, `:PORT` or a bare port number. Port 0 (any free port) is allowed. */
export function parseListenAddress(v: unknown): HostPort | { problem: string } {
  if (typeof v === 'number') return isPort(v) ? { host: '0.0.0.0', port: v } : { problem: 'must be a port number 1-65535' };
  if (typeof v !== 'string') return { problem: 'must be HOST:PORT' };
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]*)):(\d{1,5})$/.exec(v);
  if (!m) return { problem: `invalid address ${JSON.stringify(v)} (use HOST:PORT, e.g. 0.0.0.0:5000)` };
  const port = Number(m[3]);
  if (port > 65535) return { problem: `port ${port} out of range` };
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

// ---------------------------------------------------------------------------------------
// Who binds which port

export interface PortClaim {
  /** The config key that asks for the port (`listen`, `metrics.listen`, `upstreams.quay.io.port`). */
  key: string;
  /** Who holds it, for messages. */
  label: string;
  host: string;
  port: number;
}

const WILDCARDS = new Set(['', '0.0.0.0', '::', '[::]']);

/** Two binds collide when the ports match and either host is a wildcard or both are the same. */
export function bindsOverlap(a: { host: string; port: number }, b: { host: string; port: number }): boolean {
  if (a.port !== b.port || a.port === 0) return false;
  return a.host === b.host || WILDCARDS.has(a.host) || WILDCARDS.has(b.host);
}

/** Every port the config makes regcache listen on. Upstream ports bind on `listen`'s host. */
export function portClaims(cfg: Pick<Config, 'listen' | 'metrics' | 'upstreams'> & Partial<Pick<Config, 'replicas'>>): PortClaim[] {
  const claims: PortClaim[] = [{ key: 'listen', label: 'the main listener (listen)', ...cfg.listen }];
  if (cfg.metrics.listen) claims.push({ key: 'metrics.listen', label: 'the metrics listener (metrics.listen)', ...cfg.metrics.listen });
  if (cfg.replicas) claims.push({ key: 'replicas.listen', label: 'the internal replica listener (replicas.listen)', ...cfg.replicas.listen });
  for (const u of cfg.upstreams) {
    if (u.port !== undefined) claims.push({ key: `upstreams.${u.host}.port`, label: `upstream ${u.host}`, host: cfg.listen.host, port: u.port });
  }
  return claims;
}

/** The first pair of claims that cannot both bind, as [earlier, later]. */
export function portClash(claims: readonly PortClaim[]): [PortClaim, PortClaim] | undefined {
  for (let i = 0; i < claims.length; i++) {
    for (let j = 0; j < i; j++) if (bindsOverlap(claims[j]!, claims[i]!)) return [claims[j]!, claims[i]!];
  }
  return undefined;
}
