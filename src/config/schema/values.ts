/** Value parsers for schema keys: each takes a present value and the key path, and throws ConfigError naming it. */
import { fail } from '../errors.js';
import { allowedHostProblem, isPort, parseListenAddress, parseUpstreamUrl } from '../endpoint-rules.js';
import type { HostPort } from '../types.js';
import { isAmbiguousSize, parseDuration, parseSize } from '../units.js';

export function str(v: unknown, key: string): string {
  if (typeof v !== 'string' || v === '') fail(key, 'must be a non-empty string');
  return v;
}

/** Any scalar as a string: a password of digits is written unquoted and arrives as a number. */
export function secret(v: unknown, key: string): string {
  if (typeof v === 'object') fail(key, 'must be a string');
  return String(v);
}

export function bool(v: unknown, key: string): boolean {
  if (typeof v !== 'boolean') fail(key, 'must be true or false');
  return v;
}

export function oneOf<T extends string>(choices: readonly T[]) {
  return (v: unknown, key: string): T => {
    if (typeof v !== 'string' || !(choices as readonly string[]).includes(v)) fail(key, `must be one of ${choices.join(', ')}`);
    return v as T;
  };
}

export function int(min: number) {
  return (v: unknown, key: string): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) fail(key, `must be an integer >= ${min}`);
    return v;
  };
}

export function duration(v: unknown, key: string): number {
  const d = parseDuration(v);
  if (d === undefined) fail(key, `invalid duration ${JSON.stringify(v)} (use e.g. 500ms, 90s, 5m, 1h30m, 7d)`);
  return d;
}

export function size(v: unknown, key: string): number {
  if (isAmbiguousSize(v)) fail(key, `ambiguous size ${JSON.stringify(v)}: write ${String(v).trim()}iB (powers of 1024) or ${String(v).trim()}B (powers of 1000)`);
  const s = parseSize(v);
  if (s === undefined) fail(key, `invalid size ${JSON.stringify(v)} (use e.g. 512MiB, 20GiB, 1.5GB)`);
  return s;
}

/** A limit where 0 means "no limit", like `retention.interval: 0`: 0 parses to undefined (off). */
export function orOff(parse: (v: unknown, key: string) => number) {
  return (v: unknown, key: string): number | undefined => {
    const n = parse(v, key);
    return n === 0 ? undefined : n;
  };
}

export function port(v: unknown, key: string): number {
  if (!isPort(v)) fail(key, 'must be a port number 1-65535');
  return v;
}

export function hostPort(v: unknown, key: string): HostPort {
  const r = parseListenAddress(v);
  if ('problem' in r) fail(key, r.problem);
  return r;
}

export function upstreamUrl(v: unknown, key: string): string {
  const r = parseUpstreamUrl(str(v, key));
  if ('problem' in r) fail(key, r.problem);
  return r.url;
}

export function stringList(what: string) {
  return (v: unknown, key: string): string[] => {
    if (!Array.isArray(v) || v.some((t) => typeof t !== 'string' || t === '')) fail(key, `must be a list of ${what}`);
    return v as string[];
  };
}

export function allowedHostList(v: unknown, key: string): string[] {
  const list = stringList('host names, IPs or CIDRs')(v, key);
  list.forEach((h, i) => {
    const problem = allowedHostProblem(h);
    if (problem) fail(`${key}[${i}]`, problem);
  });
  return list;
}
