/**
 * Turns the raw YAML object into a validated Config. Every problem is a ConfigError
 * whose message names the key (`upstreams.ghcr.io.url: required`).
 */
import type { Config, HostPort, UpstreamConfig } from './types.js';
import { parseDuration, parseSize } from './units.js';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Raw = Record<string, unknown>;

const TOP_KEYS = ['listen', 'dataDir', 'logLevel', 'logFormat', 'tls', 'cache', 'defaultUpstream', 'upstreams',
  'retention', 'metrics', 'auth', 'upstreamTimeouts', 'upstreamHealth', 'server'];
const UPSTREAM_KEYS = ['url', 'username', 'password', 'ca', 'insecureSkipVerify', 'port', 'tagTTL', 'immutableTags'];
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const HOST_RE = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*(?::\d{1,5})?$/;

function fail(key: string, msg: string): never {
  throw new ConfigError(`${key}: ${msg}`);
}

function obj(v: unknown, key: string): Raw {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) fail(key, 'must be a mapping');
  return v as Raw;
}

function onlyKeys(o: Raw, allowed: string[], prefix: string): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) fail(prefix ? `${prefix}.${k}` : k, 'unknown key');
}

function str(v: unknown, key: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v === '') fail(key, 'must be a non-empty string');
  return v;
}

function bool(v: unknown, key: string, def: boolean): boolean {
  if (v === undefined || v === null) return def;
  if (typeof v !== 'boolean') fail(key, 'must be true or false');
  return v;
}

function duration(v: unknown, key: string, def: number): number;
function duration(v: unknown, key: string, def?: number): number | undefined;
function duration(v: unknown, key: string, def?: number): number | undefined {
  if (v === undefined || v === null) return def;
  const d = parseDuration(v);
  if (d === undefined) fail(key, `invalid duration ${JSON.stringify(v)} (use e.g. 90s, 5m, 168h)`);
  return d;
}

function size(v: unknown, key: string, def?: number): number | undefined {
  if (v === undefined || v === null) return def;
  const s = parseSize(v);
  if (s === undefined) fail(key, `invalid size ${JSON.stringify(v)} (use e.g. 512MiB, 20GiB)`);
  return s;
}

function port(v: unknown, key: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) fail(key, 'must be a port number 1-65535');
  return v;
}

function int(v: unknown, key: string, def: number, min = 0): number {
  if (v === undefined || v === null) return def;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) fail(key, `must be an integer >= ${min}`);
  return v;
}

export function parseHostPort(v: unknown, key: string): HostPort {
  if (typeof v === 'number') return { host: '0.0.0.0', port: port(v, key)! };
  if (typeof v !== 'string') fail(key, 'must be HOST:PORT');
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]*)):(\d{1,5})$/.exec(v);
  if (!m) fail(key, `invalid address ${JSON.stringify(v)} (use HOST:PORT, e.g. 0.0.0.0:5000)`);
  const p = Number(m[3]);
  if (p > 65535) fail(key, `port ${p} out of range`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port: p };
}

function upstream(host: string, raw: unknown): UpstreamConfig {
  const key = `upstreams.${host}`;
  if (!HOST_RE.test(host)) fail(key, 'not a valid registry host name (lowercase host[:port])');
  const o = obj(raw, key);
  onlyKeys(o, UPSTREAM_KEYS, key);
  const url = str(o.url, `${key}.url`);
  if (!url) fail(`${key}.url`, 'required');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    fail(`${key}.url`, `not a URL: ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') fail(`${key}.url`, 'must be http:// or https://');
  if (parsed.username || parsed.password) fail(`${key}.url`, 'must not carry credentials; use username/password');
  const immutable = o.immutableTags ?? [];
  if (!Array.isArray(immutable) || immutable.some((t) => typeof t !== 'string')) fail(`${key}.immutableTags`, 'must be a list of glob patterns');
  const out: UpstreamConfig = {
    host,
    url: parsed.toString().replace(/\/+$/, ''),
    insecureSkipVerify: bool(o.insecureSkipVerify, `${key}.insecureSkipVerify`, false),
    immutableTags: immutable as string[],
  };
  const username = str(o.username, `${key}.username`);
  const password = o.password === undefined || o.password === null ? undefined : String(o.password);
  if ((username === undefined) !== (password === undefined)) fail(key, 'username and password go together');
  if (username !== undefined) { out.username = username; out.password = password; }
  const ca = str(o.ca, `${key}.ca`);
  if (ca) out.ca = ca;
  const p = port(o.port, `${key}.port`);
  if (p !== undefined) out.port = p;
  const ttl = duration(o.tagTTL, `${key}.tagTTL`);
  if (ttl !== undefined) out.tagTTL = ttl;
  return out;
}

/** Validates a parsed config document (env vars already expanded). */
export function validateConfig(rawDoc: unknown): Config {
  const raw = obj(rawDoc, 'config');
  onlyKeys(raw, TOP_KEYS, '');

  const cache = obj(raw.cache, 'cache');
  onlyKeys(cache, ['tagTTL', 'maxManifestSize'], 'cache');
  const retention = obj(raw.retention, 'retention');
  onlyKeys(retention, ['maxAge', 'maxSize', 'interval'], 'retention');
  const metrics = obj(raw.metrics, 'metrics');
  onlyKeys(metrics, ['listen'], 'metrics');
  const timeouts = obj(raw.upstreamTimeouts, 'upstreamTimeouts');
  onlyKeys(timeouts, ['connect', 'headers', 'idle'], 'upstreamTimeouts');
  const health = obj(raw.upstreamHealth, 'upstreamHealth');
  onlyKeys(health, ['maxFails', 'failTimeout'], 'upstreamHealth');
  const server = obj(raw.server, 'server');
  onlyKeys(server, ['headersTimeout', 'requestTimeout', 'keepAliveTimeout', 'idleTimeout', 'maxConnections', 'shutdownGrace', 'streamStallTimeout'], 'server');

  const logLevel = str(raw.logLevel, 'logLevel') ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) fail('logLevel', `must be one of ${LOG_LEVELS.join(', ')}`);
  const logFormat = str(raw.logFormat, 'logFormat') ?? 'auto';
  if (!['json', 'pretty', 'auto'].includes(logFormat)) fail('logFormat', 'must be json, pretty or auto');

  const upstreamsRaw = obj(raw.upstreams, 'upstreams');
  const upstreams = Object.entries(upstreamsRaw).map(([h, u]) => upstream(h, u));
  const ports = new Map<number, string>();
  for (const u of upstreams) {
    if (u.port === undefined) continue;
    const other = ports.get(u.port);
    if (other) fail(`upstreams.${u.host}.port`, `port ${u.port} is already used by ${other}`);
    ports.set(u.port, u.host);
  }

  const cfg: Config = {
    listen: parseHostPort(raw.listen ?? '0.0.0.0:5000', 'listen'),
    dataDir: str(raw.dataDir, 'dataDir') ?? './data',
    logLevel,
    logFormat: logFormat as Config['logFormat'],
    cache: {
      tagTTL: duration(cache.tagTTL, 'cache.tagTTL', 300_000),
      maxManifestSize: size(cache.maxManifestSize, 'cache.maxManifestSize', 4 * 1024 * 1024)!,
    },
    upstreams,
    retention: {
      interval: duration(retention.interval, 'retention.interval', 600_000),
    },
    metrics: {},
    upstreamTimeouts: {
      connect: duration(timeouts.connect, 'upstreamTimeouts.connect', 10_000),
      headers: duration(timeouts.headers, 'upstreamTimeouts.headers', 30_000),
      idle: duration(timeouts.idle, 'upstreamTimeouts.idle', 30_000),
    },
    upstreamHealth: {
      maxFails: int(health.maxFails, 'upstreamHealth.maxFails', 3, 1),
      failTimeout: duration(health.failTimeout, 'upstreamHealth.failTimeout', 10_000),
    },
    server: {
      headersTimeout: duration(server.headersTimeout, 'server.headersTimeout', 10_000),
      requestTimeout: duration(server.requestTimeout, 'server.requestTimeout', 0),
      keepAliveTimeout: duration(server.keepAliveTimeout, 'server.keepAliveTimeout', 65_000),
      idleTimeout: duration(server.idleTimeout, 'server.idleTimeout', 120_000),
      maxConnections: int(server.maxConnections, 'server.maxConnections', 4096, 1),
      shutdownGrace: duration(server.shutdownGrace, 'server.shutdownGrace', 30_000),
      streamStallTimeout: duration(server.streamStallTimeout, 'server.streamStallTimeout', 60_000),
    },
  };
  const maxAge = duration(retention.maxAge, 'retention.maxAge');
  if (maxAge !== undefined) cfg.retention.maxAge = maxAge;
  const maxSize = size(retention.maxSize, 'retention.maxSize');
  if (maxSize !== undefined) cfg.retention.maxSize = maxSize;
  if (metrics.listen !== undefined) cfg.metrics.listen = parseHostPort(metrics.listen, 'metrics.listen');

  if (raw.tls !== undefined && raw.tls !== null) {
    const tls = obj(raw.tls, 'tls');
    onlyKeys(tls, ['cert', 'key'], 'tls');
    const cert = str(tls.cert, 'tls.cert');
    const key = str(tls.key, 'tls.key');
    if (!cert) fail('tls.cert', 'required when tls is set');
    if (!key) fail('tls.key', 'required when tls is set');
    cfg.tls = { cert, key };
  }
  const def = str(raw.defaultUpstream, 'defaultUpstream');
  if (def !== undefined) {
    if (!upstreams.some((u) => u.host === def)) fail('defaultUpstream', `${def} is not a configured upstream`);
    cfg.defaultUpstream = def;
  }
  if (raw.auth !== undefined && raw.auth !== null) {
    const auth = obj(raw.auth, 'auth');
    onlyKeys(auth, ['htpasswd', 'anonymousPull', 'protectMetrics'], 'auth');
    const file = str(auth.htpasswd, 'auth.htpasswd');
    if (!file) fail('auth.htpasswd', 'required when auth is set');
    cfg.auth = {
      htpasswd: file,
      anonymousPull: bool(auth.anonymousPull, 'auth.anonymousPull', false),
      protectMetrics: bool(auth.protectMetrics, 'auth.protectMetrics', true),
    };
  }
  return cfg;
}
