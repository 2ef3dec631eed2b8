/**
 * Where a cluster node reaches regcache for each configured upstream. Shared by
 * `mirror list`, registries.yaml and hosts.toml generation so the three always agree.
 *
 * Two routings:
 * - `ns`: every host points at the main listener; containerd adds `?ns=<registry>` to each
 *   request (containerd >= 1.4) and regcache routes by it.
 * - `ports`: a host with a dedicated `port:` points at endpointHost:port, where every request
 *   goes to that upstream. A host without a port falls back to the main endpoint (ns routing).
 *
 * containerd appends `/v2` to a mirror URL unless `override_path` is set, so an endpoint is
 * always a bare origin: scheme, host, optional port, no path.
 */
import type { Config } from '../config/types.js';

export type RoutingMode = 'ns' | 'ports';

/** How the nodes reach the machine regcache runs on (k3d injects it into every node). */
export const DEFAULT_ENDPOINT_HOST = 'host.k3d.internal';

export class EndpointError extends Error {
  override name = 'EndpointError';
}

export interface EndpointOptions {
  /** regcache's main address as the nodes see it; default `<scheme>://<endpointHost>:<listen port>`. */
  endpoint?: string | undefined;
  /** Host part of the default endpoint (ignored when `endpoint` is given). */
  endpointHost?: string | undefined;
  /** Default `ns`. */
  mode?: RoutingMode | undefined;
}

export interface NodeTlsOptions {
  /** CA bundle (path on the node) that signed regcache's certificate. */
  caFile?: string | undefined;
  /** Do not verify regcache's certificate. */
  insecureSkipVerify?: boolean | undefined;
}

export interface GenerateOptions extends EndpointOptions, NodeTlsOptions {
  /** Also route every other registry through the main endpoint (`"*"` / `_default`). */
  includeDefault?: boolean | undefined;
  /** Credentials the nodes present to regcache (its `auth.htpasswd`). */
  auth?: { username: string; password: string } | undefined;
}

export interface MirrorEndpoint {
  /** Registry host as image names use it (`docker.io`, `myreg:5000`). */
  host: string;
  /** The real registry URL regcache fetches from. */
  upstreamUrl: string;
  /** The upstream's dedicated listener port, when it has one. */
  port?: number | undefined;
  /** Origin (no path) a node sends this host's requests to. */
  endpoint: string;
  /** `port`: the endpoint serves only this upstream; `ns`: main endpoint, routed by `?ns=`. */
  routing: 'ns' | 'port';
  /** Ports mode was asked for but the upstream has no port: routed by ns on the main endpoint. */
  fallback: boolean;
  /** This host is the config's defaultUpstream. */
  isDefault: boolean;
}

/**
 * Checks that `value` is an http(s) URL with nothing but scheme, host and port, and returns
 * its normalised origin (`http://host.k3d.internal:5000`). A trailing `/` is accepted.
 */
export function parseEndpoint(value: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new EndpointError(`endpoint ${JSON.stringify(value)} is not a URL (use e.g. http://host.k3d.internal:5000)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new EndpointError(`endpoint ${JSON.stringify(value)} must be http:// or https://`);
  }
  if (u.username || u.password) {
    throw new EndpointError(`endpoint ${JSON.stringify(value)} must not carry credentials (use --username/--password-file)`);
  }
  if ((u.pathname !== '/' && u.pathname !== '') || u.search || u.hash) {
    throw new EndpointError(
      `endpoint ${JSON.stringify(value)} must have no path, query or fragment: containerd appends /v2 itself`,
    );
  }
  if (!u.hostname) throw new EndpointError(`endpoint ${JSON.stringify(value)} has no host`);
  return u.origin;
}

/** The same origin on another port. */
export function withPort(endpoint: string, port: number): string {
  const u = new URL(endpoint);
  u.port = String(port);
  return u.origin;
}

/**
 * `host[:port]` of an endpoint, as k3s keys registries.yaml `configs` (Go's url.URL.Host of
 * the endpoint it wrote). A default port is left out, as in the endpoint itself.
 */
export function endpointAuthority(endpoint: string): string {
  return new URL(endpoint).host;
}

/** The main listener as the nodes see it: https when the config has `tls`. */
export function mainEndpoint(cfg: Config, opts: EndpointOptions = {}): string {
  if (opts.endpoint !== undefined) return parseEndpoint(opts.endpoint);
  const scheme = cfg.tls ? 'https' : 'http';
  const host = opts.endpointHost ?? DEFAULT_ENDPOINT_HOST;
  const bracketed = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return parseEndpoint(`${scheme}://${bracketed}:${cfg.listen.port}`);
}

/** One entry per configured upstream, in config order. */
export function mirrorEndpoints(cfg: Config, opts: EndpointOptions = {}): MirrorEndpoint[] {
  const main = mainEndpoint(cfg, opts);
  const mode = opts.mode ?? 'ns';
  return cfg.upstreams.map((u) => {
    const byPort = mode === 'ports' && u.port !== undefined;
    return {
      host: u.host,
      upstreamUrl: u.url,
      port: u.port,
      endpoint: byPort ? withPort(main, u.port!) : main,
      routing: byPort ? 'port' : 'ns',
      fallback: mode === 'ports' && u.port === undefined,
      isDefault: cfg.defaultUpstream === u.host,
    };
  });
}

/**
 * regcache's own registry names (`hosted.names`): images named `<name>/<repo>` are hosted
 * ones. Their mirror is always the main endpoint (containerd adds `?ns=<name>`); there is no
 * other registry behind them.
 */
export function ownNameEndpoints(cfg: Config, opts: EndpointOptions = {}): Array<{ host: string; endpoint: string }> {
  const main = mainEndpoint(cfg, opts);
  return cfg.hosted.names.map((host) => ({ host, endpoint: main }));
}

/** Value of an HTTP Basic Authorization header. */
export function basicAuthorization(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
}

/** True for addresses only the machine itself can reach. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\./.test(h);
}
