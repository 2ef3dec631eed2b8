/**
 * The declaration helper of the config schema: one `key()` per config key says how to parse
 * it, its default, whether a change applies live or after a restart, and its doc line.
 * Validation, the unknown-key check, reload classification and the docs table are all
 * derived from these declarations (validate.ts, reload.ts, docs-table.ts).
 */
import { fail } from '../errors.js';

export type Apply = 'live' | 'restart';

export interface KeySpec<T> {
  /** Parses a present, non-null value; throws ConfigError naming `key`. */
  readonly parse: (value: unknown, key: string) => T;
  /** The default as it would be written in the file (parsed like a written value); undefined: none. */
  readonly default: unknown;
  readonly required: boolean;
  /** The default column of the docs table. */
  readonly defaultDoc: string;
  readonly apply: Apply;
  readonly doc: string;
}

export interface KeyOptions {
  default?: unknown;
  required?: boolean;
  /** Overrides the docs default column (e.g. "`cache.tagTTL`"). */
  defaultDoc?: string;
  apply: Apply;
  doc: string;
}

function docDefault(o: KeyOptions): string {
  if (o.defaultDoc !== undefined) return o.defaultDoc;
  if (o.required) return 'required';
  if (o.default === undefined) return 'none';
  return `\`${Array.isArray(o.default) ? JSON.stringify(o.default) : String(o.default)}\``;
}

export function key<T>(parse: (value: unknown, key: string) => T, o: KeyOptions): KeySpec<T> {
  return { parse, default: o.default, required: o.required ?? false, defaultDoc: docDefault(o), apply: o.apply, doc: o.doc };
}

/** One declaration per field of T (a section of the Config type), so the schema and the type cannot drift. */
export type Keys<T> = { readonly [K in keyof T]-?: KeySpec<T[K]> };

/**
 * Where a section sits in the file:
 * - `root`: its keys are top-level keys;
 * - `always`: a mapping at `path`, all defaults when absent;
 * - `optional`: a mapping at `path` that switches a feature on (`tls`, `auth`); absent: undefined;
 * - `map`: a mapping at `path` from a name to one such section each (`upstreams.<host>`).
 */
export type Placement = 'root' | 'always' | 'optional' | 'map';

export interface MapEntry {
  /** The field of each entry that holds its name (`host`). */
  readonly field: string;
  /** How the name appears in docs (`<host>`). */
  readonly doc: string;
  readonly nameProblem: (name: string) => string | undefined;
}

export interface Section<T> {
  readonly path: string;
  readonly placement: Placement;
  readonly keys: Keys<T>;
  /** For `map` sections: the entries' name. */
  readonly entry?: MapEntry;
  /** Rules between keys of one section (or one entry), after every key parsed. */
  readonly check?: (value: T, prefix: string) => void;
}

export function section<T>(
  path: string, placement: Placement, keys: Keys<T>, extra: Pick<Section<T>, 'entry' | 'check'> = {},
): Section<T> {
  return { path, placement, keys, ...extra };
}

export type Raw = Record<string, unknown>;

export function mapping(v: unknown, key: string): Raw {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) fail(key, 'must be a mapping');
  return v as Raw;
}

export function joinKey(prefix: string, k: string): string {
  return prefix ? `${prefix}.${k}` : k;
}

/** Parses the declared keys of `raw` (unknown keys are the caller's check); absent optional keys stay absent. */
export function parseKeys<T>(keys: Keys<T>, raw: Raw, prefix: string): T {
  const out: Raw = {};
  for (const [k, spec] of Object.entries(keys) as [string, KeySpec<unknown>][]) {
    const path = joinKey(prefix, k);
    const v = raw[k];
    let value: unknown;
    if (v !== undefined && v !== null) value = spec.parse(v, path);
    else if (spec.required) fail(path, 'required');
    else if (spec.default !== undefined) value = spec.parse(spec.default, path);
    if (value !== undefined) out[k] = value;
  }
  return out as T;
}

export function checkKnown(raw: Raw, allowed: readonly string[], prefix: string): void {
  for (const k of Object.keys(raw)) if (!allowed.includes(k)) fail(joinKey(prefix, k), 'unknown key');
}

export function parseSection<T>(s: Section<T>, raw: unknown, prefix = s.path): T {
  const o = mapping(raw, prefix);
  checkKnown(o, Object.keys(s.keys), prefix);
  const value = parseKeys(s.keys, o, prefix);
  s.check?.(value, prefix);
  return value;
}

/** The key path of `k` as docs and messages show it (`upstreams.<host>.url`). */
export function docPath(s: Pick<Section<unknown>, 'path' | 'entry'>, k: string): string {
  return joinKey(s.entry ? `${s.path}.${s.entry.doc}` : s.path, k);
}
